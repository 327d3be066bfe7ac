// Helpers for the browser tests: the real `items serve` on a free port with a
// fresh data dir and a user, and a headless Chrome or Chromium (../find-browser.mjs).

import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

import { findBrowser } from "../find-browser.mjs";

export const E2E_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const REPO_DIR = resolve(E2E_DIR, "..");
export const ARTIFACTS_DIR = join(E2E_DIR, "artifacts");
export const ITEMS_BIN = process.env.ITEMS_BIN ?? join(REPO_DIR, "target", "debug", "items");
export const CHROMIUM = findBrowser();
export const DEV_CLIENT_ID = "itemslocaldevclient0000000";

export const USER = "alice";
export const PASSWORD = "correct horse battery staple";

/** Runs `items` to completion with `input` on stdin; rejects on a non-zero exit. */
export function items(args, input = "") {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(ITEMS_BIN, args, { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (chunk) => (out += chunk));
    child.stderr.on("data", (chunk) => (err += chunk));
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolvePromise(out) : reject(new Error(`items ${args.join(" ")} exited ${code}: ${err}`)),
    );
    // A command that does not read its input (`items token`) may be done
    // before the input is written: EPIPE then, which its exit code settles.
    child.stdin.on("error", () => {});
    child.stdin.end(input);
  });
}

let servers = 0;

/**
 * `items serve --addr 127.0.0.1:0` (the kernel picks a free port; the banner
 * says which) with a fresh data dir holding the user alice.
 */
export async function startServer(extraArgs = [], extraEnv = {}) {
  const dataDir = await mkdtemp(join(tmpdir(), "items-e2e-"));
  await items(["user", "add", USER, "--password-stdin", "--data-dir", dataDir], `${PASSWORD}\n`);
  await mkdir(ARTIFACTS_DIR, { recursive: true });
  const log = createWriteStream(join(ARTIFACTS_DIR, `server-${++servers}.log`));
  const child = spawn(ITEMS_BIN, ["serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir, ...extraArgs], {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "info", ITEMS_LOG_FORMAT: "", ...extraEnv },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stderr.pipe(log);
  const baseUrl = await new Promise((resolvePromise, reject) => {
    let banner = "";
    const timer = setTimeout(() => reject(new Error(`items serve did not start: ${banner}`)), 30_000);
    child.stdout.on("data", (chunk) => {
      log.write(chunk);
      banner += chunk;
      const match = banner.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (match) {
        clearTimeout(timer);
        resolvePromise(match[1]);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`items serve exited ${code}: ${banner}`));
    });
  });
  child.removeAllListeners("exit");
  return {
    baseUrl,
    dataDir,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await exited;
      }
      log.end();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Headless Chromium with a fresh profile (Playwright makes a temporary user data dir). */
export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** The claims of a JWT, unverified. */
export function claimsOf(token) {
  return JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8"));
}

/** A token whose payload is edited (its signature no longer matches). */
export function withClaims(token, edit) {
  const [header, , signature] = token.split(".");
  const claims = edit(claimsOf(token));
  return `${header}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${signature}`;
}
