//! The command line: `serve`, `run`, `languages`, `plan`, `plugin check`, `plugin new`.
//!
//! Every server setting is a flag and an environment variable; `sidecar serve --help`
//! documents them all.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::plugins::{self, PlanRequest, PluginLimits, Registry, Runtime};

#[derive(Debug, Parser)]
#[command(
    name = "sidecar",
    version,
    about = "Runs untrusted code for AI agents: file tools, a shell and code execution in many languages, behind a JSON API on a Unix socket."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the JSON API on a Unix socket (and optionally TCP).
    Serve(Box<ServeArgs>),
    /// Run one file through the plugins and the executor, without a server. Exits
    /// with the program's status, as a shell would: its exit code, 128 + N when
    /// signal N ended it, 124 on timeout.
    Run(RunArgs),
    /// List the languages served, their plugins, and whether their toolchain is installed.
    Languages(PluginArgs),
    /// Print the plan a plugin makes for a file, as JSON, without running it.
    Plan(PlanArgs),
    /// Work with plugin files.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Ask a running sidecar for GET /health over its socket; exit 0 when healthy
    /// (for container HEALTHCHECKs).
    Healthcheck {
        #[arg(
            long = "socket",
            env = "SOCKET_PATH",
            default_value = "/var/run/sidecar/sidecar.sock"
        )]
        socket_path: PathBuf,
        /// The endpoint to ask: /health (liveness) or /ready (readiness).
        #[arg(long, default_value = "/health")]
        path: String,
    },
}

/// Where plugins, `languages.toml` and the compile cache are.
#[derive(Debug, Clone, Args)]
pub struct PluginArgs {
    /// Directory of plugin components (`*.wasm`). Default: `plugins/` beside the
    /// executable, else /usr/lib/sidecar/plugins.
    #[arg(long, env = "SIDECAR_PLUGINS_DIR")]
    pub plugins_dir: Option<PathBuf>,
    /// The languages file. Default: ./languages.toml, else /etc/sidecar/languages.toml.
    #[arg(long = "languages", env = "SIDECAR_LANGUAGES")]
    pub languages_file: Option<PathBuf>,
    /// Directory for compiled plugins. Default: $XDG_CACHE_HOME/sidecar or ~/.cache/sidecar.
    #[arg(long, env = "SIDECAR_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Memory a plugin call may use, in MiB.
    #[arg(long, env = "SIDECAR_PLUGIN_MEMORY_MB", default_value_t = 128)]
    pub plugin_memory_mb: usize,
    /// Time a plugin call may take, in milliseconds.
    #[arg(long, env = "SIDECAR_PLUGIN_TIMEOUT_MS", default_value_t = 1000)]
    pub plugin_timeout_ms: u64,
}

impl PluginArgs {
    pub fn plugins_dir(&self) -> PathBuf {
        self.plugins_dir
            .clone()
            .unwrap_or_else(plugins::default_dir)
    }

    pub fn languages_file(&self) -> PathBuf {
        self.languages_file
            .clone()
            .unwrap_or_else(crate::config::languages::default_path)
    }

    pub fn runtime(&self) -> anyhow::Result<Arc<Runtime>> {
        let limits = PluginLimits {
            memory: self.plugin_memory_mb << 20,
            timeout: Duration::from_millis(self.plugin_timeout_ms),
            ..PluginLimits::default()
        };
        let cache = self
            .cache_dir
            .clone()
            .unwrap_or_else(plugins::cache::default_dir);
        Runtime::new(limits, Some(cache))
    }

    /// Loads everything, logging load errors and warnings.
    pub fn registry(&self) -> anyhow::Result<(Arc<Runtime>, Registry)> {
        let runtime = self.runtime()?;
        let languages = self.languages_file();
        if !languages.exists() {
            // A file asked for by name that is not there is likely a mistake; no file
            // where none was asked for is the plugins' defaults, as documented.
            if self.languages_file.is_some() {
                tracing::warn!(path = %languages.display(), "no such languages file: plugin defaults only");
            } else {
                tracing::info!(
                    "no ./languages.toml or /etc/sidecar/languages.toml: plugin defaults only"
                );
            }
        }
        let registry = plugins::load_registry(&runtime, &self.plugins_dir(), &languages, None)?;
        for e in &registry.plugins.errors {
            tracing::error!("plugin not loaded: {e}");
        }
        for w in &registry.warnings {
            tracing::warn!("{w}");
        }
        Ok((runtime, registry))
    }
}

/// Settings of the server.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Unix socket to listen on (its directory is created; a stale socket is replaced).
    #[arg(
        long = "socket",
        env = "SOCKET_PATH",
        default_value = "/var/run/sidecar/sidecar.sock"
    )]
    pub socket_path: PathBuf,
    /// Mode of the socket file, in octal. Keep it closed to others: user code runs
    /// in the same container (as uid 65532) and must not reach the API.
    #[arg(long, env = "SIDECAR_SOCKET_MODE", default_value = "660", value_parser = parse_mode)]
    pub socket_mode: u32,
    /// Group of the socket file (a gid the agent container has), so the agent can
    /// connect with mode 660 while user code cannot.
    #[arg(long, env = "SIDECAR_SOCKET_GID")]
    pub socket_gid: Option<u32>,
    /// Also listen on this TCP address (e.g. 127.0.0.1:8080). Off by default.
    /// `TCP_HOST` (default 127.0.0.1) and `TCP_PORT` are accepted too.
    #[arg(long = "tcp", env = "TCP_ADDR")]
    pub tcp_addr: Option<std::net::SocketAddr>,
    /// Allow a non-loopback TCP address without an auth token.
    #[arg(long, env = "SIDECAR_ALLOW_INSECURE_TCP")]
    pub allow_insecure_tcp: bool,
    /// When set, every request except GET /health needs `Authorization: Bearer <token>`.
    #[arg(long, env = "SIDECAR_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// Root of the session directories.
    #[arg(long, env = "WORKSPACE_ROOT", default_value = "/workspace")]
    pub workspace_root: PathBuf,
    /// Every session works on the root itself.
    #[arg(long, env = "SHARED_WORKSPACE", value_parser = parse_flag, default_value = "false", num_args = 0..=1, default_missing_value = "true")]
    pub shared_workspace: bool,
    /// Largest request body, in bytes (413 beyond).
    #[arg(long, env = "SIDECAR_BODY_LIMIT", default_value_t = 16 << 20)]
    pub body_limit: usize,
    /// Seconds a client has to send a request's head, may pause inside its body (408),
    /// and a connection may sit idle between requests, before it is closed (requests
    /// themselves may take longer).
    #[arg(long, env = "SIDECAR_HEADER_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout: u64,
    /// Seconds in-flight requests get to finish on SIGTERM/SIGINT before what still runs is killed.
    #[arg(long, env = "SIDECAR_GRACE_SECONDS", default_value_t = 10)]
    pub grace_seconds: u64,
    /// Log format: text or json.
    #[arg(long, env = "SIDECAR_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    /// Default language of /execute when a request names none (else $LANGUAGE).
    #[arg(long, env = "SIDECAR_DEFAULT_LANGUAGE")]
    pub default_language: Option<String>,
    #[command(flatten)]
    pub plugins: PluginArgs,
    #[command(flatten)]
    pub exec: ExecArgs,
}

/// Limits of executions (/execute, /bash, `sidecar run`).
#[derive(Debug, Clone, Args)]
pub struct ExecArgs {
    /// Default run timeout of /execute, in seconds.
    #[arg(long, env = "SIDECAR_DEFAULT_TIMEOUT", default_value_t = 30)]
    pub default_timeout: u64,
    /// Largest timeout a request may ask for, in seconds (larger ones are clamped).
    #[arg(long, env = "SIDECAR_MAX_TIMEOUT", default_value_t = 300)]
    pub max_timeout: u64,
    /// Timeout of each compile command, in seconds.
    #[arg(long, env = "SIDECAR_COMPILE_TIMEOUT", default_value_t = 60)]
    pub compile_timeout: u64,
    /// Memory limit per execution in MiB (scaled by the language's memory_multiplier).
    #[arg(long, env = "SIDECAR_MEMORY_MB", default_value_t = 512)]
    pub memory_mb: u64,
    /// Output kept per stream, in bytes; the rest is drained and dropped.
    #[arg(long, env = "SIDECAR_OUTPUT_CAP", default_value_t = 1 << 20)]
    pub output_cap: usize,
    /// Executions at once (default: twice the cores).
    #[arg(long, env = "SIDECAR_MAX_CONCURRENT")]
    pub max_concurrent: Option<usize>,
    /// Executions that may wait for a slot; beyond, 503 with Retry-After.
    #[arg(long, env = "SIDECAR_MAX_QUEUE", default_value_t = 64)]
    pub max_queue: usize,
    /// Processes per execution.
    #[arg(long, env = "SIDECAR_MAX_PROCESSES", default_value_t = 256)]
    pub max_processes: u64,
    /// Largest file an execution may write, in MiB.
    #[arg(long, env = "SIDECAR_MAX_FILE_MB", default_value_t = 256)]
    pub max_file_mb: u64,
    /// Where per-execution scratch directories are made. Default: /dev/shm/sidecar when
    /// /dev/shm is a tmpfs with at least 1 GiB free (faster), else /tmp/sidecar.
    #[arg(long, env = "SIDECAR_SCRATCH_DIR", default_value_os_t = crate::runner::scratch::default_root())]
    pub scratch_dir: PathBuf,
    /// The uid /bash commands run as when the sidecar runs as root.
    #[arg(long, env = "SIDECAR_BASH_USER_ID", default_value_t = crate::plugins::DEFAULT_USER_ID)]
    pub bash_user_id: u32,
    /// Let /bash commands use the network (off: they join the empty network namespace).
    #[arg(long, env = "SIDECAR_BASH_NETWORK", value_parser = parse_flag, default_value = "false", num_args = 0..=1, default_missing_value = "true")]
    pub bash_network: bool,
    /// Do not use per-execution cgroups (memory and process limits, kill-all).
    #[arg(long, env = "SIDECAR_NO_CGROUPS", value_parser = parse_flag, default_value = "false", num_args = 0..=1, default_missing_value = "true")]
    pub no_cgroups: bool,
    /// Do not cut executions off the network, whatever the language says.
    #[arg(long, env = "SIDECAR_NO_NETWORK_ISOLATION", value_parser = parse_flag, default_value = "false", num_args = 0..=1, default_missing_value = "true")]
    pub no_network_isolation: bool,
    /// Let executions share the sidecar's /tmp, /var/tmp and /dev/shm instead of each
    /// getting its own empty ones.
    #[arg(long, env = "SIDECAR_SHARED_TMP", value_parser = parse_flag, default_value = "false", num_args = 0..=1, default_missing_value = "true")]
    pub shared_tmp: bool,
    /// Run user code as root even when the sidecar is root (not recommended).
    #[arg(long, env = "SIDECAR_NO_UID_DROP", value_parser = parse_flag, default_value = "false", num_args = 0..=1, default_missing_value = "true")]
    pub no_uid_drop: bool,
    /// The ids `FIRST:COUNT` given one to an execution (as root): without cgroups as
    /// uids, swept afterwards (two such sidecars sharing a PID namespace need disjoint
    /// ranges); with them as gids, so that executions cannot look into each other.
    #[arg(long, env = "SIDECAR_UID_POOL", value_parser = parse_uid_pool, default_value = "200000:512")]
    pub uid_pool: (u32, u32),
}

impl ExecArgs {
    /// What the sandbox should try to use.
    pub fn sandbox_settings(&self) -> crate::exec::SandboxSettings {
        let defaults = crate::exec::SandboxSettings::default();
        crate::exec::SandboxSettings {
            cgroups: !self.no_cgroups,
            network_isolation: !self.no_network_isolation,
            run_as: if self.no_uid_drop {
                None
            } else {
                defaults.run_as
            },
            uid_pool: Some(self.uid_pool),
            gid_pool: Some(self.uid_pool),
            private_tmp: !self.shared_tmp,
            scratch: Some(self.scratch_dir.clone()),
            private_tmp_size: self.max_file_mb << 20,
            ..defaults
        }
    }
}

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .map_err(|e| format!("not an octal mode: {e}"))
}

fn parse_uid_pool(s: &str) -> Result<(u32, u32), String> {
    let parsed = s.split_once(':').and_then(|(first, count)| {
        Some((
            first.trim().parse::<u32>().ok()?,
            count.trim().parse::<u32>().ok()?,
        ))
    });
    match parsed {
        Some((first, count)) if first > 0 && count > 0 && first.checked_add(count).is_some() => {
            Ok((first, count))
        }
        _ => Err(format!(
            "expected FIRST:COUNT (uids FIRST to FIRST+COUNT-1, FIRST > 0), got `{s}`"
        )),
    }
}

fn parse_flag(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("expected true/false/1/0, got `{s}`")),
    }
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Language code or alias. Default: guessed from the file's extension.
    #[arg(long, short)]
    pub language: Option<String>,
    /// The source file.
    pub file: PathBuf,
    /// Program arguments.
    pub args: Vec<String>,
    #[command(flatten)]
    pub plugins: PluginArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Language code or alias. Default: guessed from the file's extension.
    #[arg(long, short)]
    pub language: Option<String>,
    /// A file whose content is the program's stdin.
    #[arg(long)]
    pub stdin: Option<PathBuf>,
    /// Run timeout in seconds (before the language's multiplier).
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Work directory (the program's current directory). Default: a temporary directory.
    #[arg(long)]
    pub workdir: Option<PathBuf>,
    /// Print the whole outcome as JSON instead of the program's output.
    #[arg(long)]
    pub json: bool,
    /// The source file.
    pub file: PathBuf,
    /// Program arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
    #[command(flatten)]
    pub plugins: PluginArgs,
    #[command(flatten)]
    pub exec: ExecArgs,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Load a component, validate it against the world, and print what it describes.
    Check {
        /// The plugin file.
        file: PathBuf,
        /// Directory for compiled plugins (default: no cache).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Write a new plugin crate, ready to build and test.
    New {
        /// The plugin's name (also the language code it serves).
        name: String,
        /// Where to create it. Default: ./NAME.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Path to the sidecar repository's `plugins/sdk` (default: found from the executable's location, `<repo>/target/release/sidecar`, or the current directory).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

/// Finds the language for a file: the given name, else the file's extension.
pub fn pick_language(
    registry: &Registry,
    name: Option<&str>,
    file: &std::path::Path,
) -> anyhow::Result<Arc<plugins::Language>> {
    if let Some(name) = name {
        return registry.resolve(name).ok_or_else(|| {
            anyhow::anyhow!(
                "unknown language `{name}`; available: {}",
                registry.codes().join(", ")
            )
        });
    }
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .ok_or_else(|| anyhow::anyhow!("{} has no extension: give --language", file.display()))?;
    registry
        .languages()
        .find(|l| l.settings.file_extension.eq_ignore_ascii_case(ext))
        .cloned()
        .or_else(|| registry.resolve(ext))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no language uses the extension `.{ext}`: give --language (available: {})",
                registry.codes().join(", ")
            )
        })
}

pub fn languages(args: PluginArgs) -> anyhow::Result<i32> {
    let (_runtime, registry) = args.registry()?;
    let mut rows = vec![[
        "CODE".to_string(),
        "NAME".into(),
        "ALIASES".into(),
        "PLUGIN".into(),
        "VERSION".into(),
        "TOOLCHAIN".into(),
    ]];
    for lang in registry.languages() {
        let s = &lang.settings;
        rows.push([
            s.code.clone(),
            s.name.clone(),
            s.aliases.join(","),
            lang.plugin.info.name.clone(),
            lang.plugin.info.version.clone(),
            match s.missing_program() {
                None => "ok".into(),
                Some(p) => format!("missing: {p}"),
            },
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    let mut status = 0;
    for e in &registry.plugins.errors {
        eprintln!("error: plugin not loaded: {e}");
        status = 1;
    }
    for e in &registry.language_errors {
        eprintln!("error: {}", e.error);
        status = 1;
    }
    Ok(status)
}

pub fn plan(args: PlanArgs) -> anyhow::Result<i32> {
    let (_runtime, registry) = args.plugins.registry()?;
    let lang = pick_language(&registry, args.language.as_deref(), &args.file)?;
    let code = std::fs::read_to_string(&args.file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.file.display()))?;
    let request = PlanRequest {
        code,
        files: Vec::new(),
        args: args.args,
        has_stdin: false,
        work_dir: "/workspace".into(),
        scratch_dir: "/tmp/sidecar/exec-0".into(),
    };
    match lang.plugin.plan_blocking(&lang.settings, request) {
        Ok(plan) => {
            let out = serde_json::json!({
                "language": lang.settings.code,
                "plugin": lang.plugin.info.name,
                "workDir": "/workspace",
                "scratchDir": "/tmp/sidecar/exec-0",
                // The settings the plan was made with (languages.toml over the
                // plugin's defaults), so overrides can be checked.
                "settings": lang.settings,
                "plan": plan,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(0)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(1)
        }
    }
}

pub fn plugin_check(file: PathBuf, cache_dir: Option<PathBuf>) -> anyhow::Result<i32> {
    let runtime = Runtime::new(PluginLimits::default(), cache_dir)?;
    match runtime.load(&file) {
        Ok(plugin) => {
            // A trial plan per language (hello-world-sized code), so a plugin that
            // loads but plans badly (a trap, an empty argv) is caught here too. A
            // refusal is fine: the plugin may reject this trial code.
            let mut failed = false;
            let trials: Vec<_> = plugin
                .info
                .languages
                .iter()
                .map(|lang| {
                    let request = PlanRequest {
                        code: "hello".into(),
                        work_dir: "/workspace".into(),
                        scratch_dir: "/tmp/sidecar/exec-0".into(),
                        ..PlanRequest::default()
                    };
                    let (outcome, message) = match plugin.plan_blocking(lang, request) {
                        Ok(_) => ("ok", None),
                        Err(plugins::CallError::Refused(r)) => ("refused", Some(r.to_string())),
                        Err(e) => {
                            failed = true;
                            ("failed", Some(e.to_string()))
                        }
                    };
                    serde_json::json!({"language": lang.code, "outcome": outcome, "message": message})
                })
                .collect();
            if failed {
                eprintln!("error: {}: a trial plan failed", file.display());
            }
            let out = serde_json::json!({
                "ok": !failed,
                "trialPlans": trials,
                "file": file.display().to_string(),
                "sha256": plugin.sha256,
                // Whether the compiled code came from --cache-dir (no compilation).
                "fromCache": plugin.from_cache,
                "interface": format!("{}@{}", plugins::v0_1::PACKAGE, plugin.interface),
                "plugin": plugin.info,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(i32::from(failed))
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(1)
        }
    }
}

pub fn plugin_new(name: &str, dir: Option<PathBuf>, sdk: Option<PathBuf>) -> anyhow::Result<i32> {
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    let sdk = sdk.or_else(plugins::scaffold::find_sdk).ok_or_else(|| {
        anyhow::anyhow!(
            "cannot find the plugin SDK (plugins/sdk of the sidecar repository): pass --sdk PATH"
        )
    })?;
    for path in plugins::scaffold::write(name, &dir, &sdk)? {
        println!("wrote {}", path.display());
    }
    println!(
        "next: cd {} && cargo test && cargo build --release --target wasm32-wasip2",
        dir.display()
    );
    Ok(0)
}

pub fn healthcheck(socket: &std::path::Path, path: &str) -> anyhow::Result<i32> {
    if !path.starts_with('/') || path.contains(char::is_whitespace) {
        anyhow::bail!("--path must be an absolute URL path such as /health");
    }
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket)
        .map_err(|e| anyhow::anyhow!("cannot connect to {}: {e}", socket.display()))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let healthy = response.starts_with("HTTP/1.1 200");
    println!("{}", response.lines().next().unwrap_or(""));
    Ok(if healthy { 0 } else { 1 })
}
