// Finds a Chrome or Chromium for the browser tests: $CHROME_PATH first, then
// the usual names on PATH, then the usual install locations on Linux and
// macOS. Run directly, it prints the path, or says what to install and exits 1.

import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";

const NAMES = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"];
const LOCATIONS = [
  "/usr/bin/chromium",
  "/usr/bin/chromium-browser",
  "/usr/bin/google-chrome",
  "/snap/bin/chromium",
  "/opt/google/chrome/chrome",
  "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
  "/Applications/Chromium.app/Contents/MacOS/Chromium",
];

export const INSTALL_HINT =
  "No Chrome or Chromium found for the browser tests. Set CHROME_PATH to one, or install one: " +
  "Debian/Ubuntu `sudo apt-get install chromium`, Fedora `sudo dnf install chromium`, " +
  "macOS `brew install --cask chromium` (or Google Chrome from google.com/chrome).";

function executable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The browser to drive, or null when there is none. */
export function findBrowser(env = process.env) {
  if (env.CHROME_PATH) {
    return executable(env.CHROME_PATH) ? env.CHROME_PATH : null;
  }
  const onPath = (env.PATH ?? "").split(delimiter).filter(Boolean);
  for (const name of NAMES) {
    for (const dir of onPath) {
      if (executable(join(dir, name))) return join(dir, name);
    }
  }
  return LOCATIONS.find(executable) ?? null;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const found = findBrowser();
  if (found) {
    console.log(found);
  } else {
    console.error(process.env.CHROME_PATH ? `CHROME_PATH=${process.env.CHROME_PATH} is not an executable.` : INSTALL_HINT);
    process.exit(1);
  }
}
