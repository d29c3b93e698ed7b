//! The peer programs: where they are, their command line, and their line protocol on stdout.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a peer may run before it gives up by itself (it then exits with an error).
const PEER_TIMEOUT: Duration = Duration::from_secs(20);
/// How long to wait for one line from a peer, or for it to exit.
const LINE_TIMEOUT: Duration = Duration::from_secs(25);

/// The peers' implementations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    /// Node `ws`, `ws_peer.js`.
    Node,
    /// Python `websockets`, `websockets_peer.py`.
    Python,
}

/// Where `tests/interop/run` installed the interpreters and the peer programs.
pub struct Installed {
    node: PathBuf,
    python: PathBuf,
    peers: PathBuf,
}

impl Installed {
    /// Reads the locations from the environment, failing loudly when one is missing: these
    /// tests run only with `--ignored`, and then the peers must be there.
    pub fn from_env() -> Self {
        let var = |name: &str| -> PathBuf {
            let value = std::env::var_os(name).unwrap_or_else(|| {
                panic!("{name} is not set: run tests/interop/run, which installs the peers")
            });
            let path = PathBuf::from(value);
            assert!(path.exists(), "{name}={} does not exist", path.display());
            path
        };
        Self {
            node: var("WSIO_INTEROP_NODE"),
            python: var("WSIO_INTEROP_PYTHON"),
            peers: var("WSIO_INTEROP_PEERS"),
        }
    }

    fn command(&self, kind: PeerKind) -> Command {
        let (interpreter, script) = match kind {
            PeerKind::Node => (&self.node, "ws_peer.js"),
            PeerKind::Python => (&self.python, "websockets_peer.py"),
        };
        let mut command = Command::new(interpreter);
        command.arg(self.peers.join(script));
        command
    }
}

/// `client_max_window_bits` as the peer is told to configure it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClientBits {
    /// The library's default: offered without a value by both client libraries, not
    /// configured on a server.
    #[default]
    Default,
    /// Offered without a value, explicitly (clients only).
    Bare,
    /// Not offered at all (clients only).
    Omit,
    /// This many bits: offered by a client, asked for by a server.
    Bits(u8),
}

/// A peer's permessage-deflate configuration.
#[derive(Debug, Clone, Copy)]
pub struct PeerDeflate {
    pub enabled: bool,
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
    pub server_max_window_bits: Option<u8>,
    pub client_max_window_bits: ClientBits,
}

impl Default for PeerDeflate {
    fn default() -> Self {
        Self {
            enabled: true,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: None,
            client_max_window_bits: ClientBits::Default,
        }
    }
}

impl PeerDeflate {
    fn args(&self) -> Vec<String> {
        if !self.enabled {
            return vec!["--no-deflate".into()];
        }
        let mut args = Vec::new();
        if self.server_no_context_takeover {
            args.push("--server-no-context-takeover".into());
        }
        if self.client_no_context_takeover {
            args.push("--client-no-context-takeover".into());
        }
        if let Some(bits) = self.server_max_window_bits {
            args.extend(["--server-max-window-bits".into(), bits.to_string()]);
        }
        let client_bits = match self.client_max_window_bits {
            ClientBits::Default => None,
            ClientBits::Bare => Some("bare".to_owned()),
            ClientBits::Omit => Some("omit".to_owned()),
            ClientBits::Bits(bits) => Some(bits.to_string()),
        };
        if let Some(value) = client_bits {
            args.extend(["--client-max-window-bits".into(), value]);
        }
        args
    }

    /// The offer this configuration makes as a client, in the order both libraries write it
    /// (RFC 7692 §7.1's order).
    pub fn expected_offer(&self) -> Vec<String> {
        if !self.enabled {
            return Vec::new();
        }
        let mut offer = String::from("permessage-deflate");
        if self.server_no_context_takeover {
            offer.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            offer.push_str("; client_no_context_takeover");
        }
        if let Some(bits) = self.server_max_window_bits {
            offer.push_str(&format!("; server_max_window_bits={bits}"));
        }
        match self.client_max_window_bits {
            ClientBits::Default | ClientBits::Bare => offer.push_str("; client_max_window_bits"),
            ClientBits::Omit => {}
            ClientBits::Bits(bits) => offer.push_str(&format!("; client_max_window_bits={bits}")),
        }
        vec![offer]
    }
}

/// A running peer process, killed if still running when dropped.
pub struct Peer {
    kind: PeerKind,
    child: Child,
    lines: Receiver<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Peer {
    /// Starts a peer that connects to `url`.
    pub fn client(installed: &Installed, kind: PeerKind, url: &str, deflate: &PeerDeflate) -> Self {
        let mut command = installed.command(kind);
        command.args(["client", "--url", url]).args(deflate.args());
        Self::spawn(kind, command)
    }

    /// Starts a peer that listens on a port of its choosing; read it with `line("listening")`.
    pub fn server(installed: &Installed, kind: PeerKind, deflate: &PeerDeflate) -> Self {
        let mut command = installed.command(kind);
        command.arg("server").args(deflate.args());
        Self::spawn(kind, command)
    }

    fn spawn(kind: PeerKind, mut command: Command) -> Self {
        command
            .args(["--timeout-ms", &PEER_TIMEOUT.as_millis().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {command:?}: {error}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().expect("piped stderr");
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Self {
            kind,
            child,
            lines,
            stderr: Some(stderr),
        }
    }

    /// Returns the value of the next line, which must start with `key`.
    pub fn line(&mut self, key: &str) -> String {
        let line = match self.lines.recv_timeout(LINE_TIMEOUT) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => self.fail(&format!("no {key:?} line in time")),
            Err(RecvTimeoutError::Disconnected) => {
                self.fail(&format!("stdout ended before a {key:?} line"))
            }
        };
        match line.split_once(' ') {
            Some((found, value)) if found == key => value.to_owned(),
            _ if line == key => String::new(),
            _ => self.fail(&format!("expected a {key:?} line, got {line:?}")),
        }
    }

    /// Panics with the peer's stderr if it has already exited.
    pub fn assert_running(&mut self, when: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            self.fail(&format!("exited {when} with {status}"));
        }
    }

    /// Waits for the peer to exit by itself, which must be a success.
    pub fn wait_success(mut self) {
        let deadline = Instant::now() + LINE_TIMEOUT;
        loop {
            match self.child.try_wait().expect("wait for the peer") {
                Some(status) if status.success() => return,
                Some(status) => self.fail(&format!("exited with {status}")),
                None if Instant::now() > deadline => self.fail("did not exit in time"),
                None => thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    /// Kills the peer and panics with what it wrote to stderr.
    fn fail(&mut self, problem: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let stderr = self
            .stderr
            .take()
            .and_then(|handle| handle.join().ok())
            .unwrap_or_default();
        panic!("{:?} peer {problem}; its stderr:\n{stderr}", self.kind);
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Kills only our own child, by its handle; an exited one is just reaped.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
