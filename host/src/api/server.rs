//! `sidecar serve`: loads everything, listens on the Unix socket (and TCP), and shuts
//! down cleanly on SIGTERM/SIGINT: stop accepting, let in-flight requests finish within
//! the grace period, kill what still runs, remove the socket.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;

use hyper::body::Incoming;
use tower::ServiceExt;

use super::idle_body::IdleBody;
use super::{router, AppState};
use crate::cli::ServeArgs;
use crate::exec::sandbox::Sandbox;
use crate::runner::Executor;
use crate::workspace::Workspace;

pub fn serve(mut args: ServeArgs) -> anyhow::Result<i32> {
    if args.tcp_addr.is_none() {
        args.tcp_addr = legacy_tcp_addr()?;
    }
    if let Some(addr) = args.tcp_addr {
        let has_token = args.auth_token.as_deref().is_some_and(|t| !t.is_empty());
        if !addr.ip().is_loopback() && !has_token && !args.allow_insecure_tcp {
            anyhow::bail!(
                "refusing to listen on {addr} (not loopback) without SIDECAR_AUTH_TOKEN; set a token, or pass --allow-insecure-tcp"
            );
        }
    }
    raise_open_files_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sidecar")
        .build()?;
    runtime.block_on(run(args))?;
    // Dropping the runtime drops in-flight requests: their executions are killed.
    runtime.shutdown_timeout(Duration::from_secs(2));
    // Scratch dirs and cgroups of the last executions are removed in the background.
    crate::exec::background::flush(Duration::from_secs(2));
    Ok(0)
}

async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    // Before the registry is loaded: a change from here on triggers a reload.
    let baseline = crate::api::reload::Baseline::take(
        args.plugins.plugins_dir(),
        args.plugins.languages_file(),
    );
    let (plugin_runtime, registry) = args.plugins.registry()?;
    for e in &registry.language_errors {
        tracing::error!("{}", e.error);
    }
    let mut sandbox_settings = args.exec.sandbox_settings();
    sandbox_settings.visible.push(args.workspace_root.clone());
    sandbox_settings.workspace = Some(args.workspace_root.clone());
    let sandbox = Arc::new(Sandbox::detect(sandbox_settings));
    for p in sandbox.report() {
        if p.active {
            tracing::info!(protection = %p.name, "protection active: {}", p.detail);
        } else {
            tracing::warn!(protection = %p.name, "protection NOT active: {}", p.detail);
        }
    }
    std::fs::create_dir_all(&args.workspace_root).map_err(|e| {
        anyhow::anyhow!(
            "cannot create the workspace {}: {e}",
            args.workspace_root.display()
        )
    })?;
    // User code must be able to write where the file tools write.
    if let Some((uid, gid)) = sandbox.run_as() {
        use std::os::unix::fs::MetadataExt;
        if std::fs::metadata(&args.workspace_root).is_ok_and(|m| m.uid() == 0) {
            let _ = std::os::unix::fs::chown(&args.workspace_root, Some(uid), Some(gid));
        }
    }
    let workspace = Workspace::new(args.workspace_root.clone(), args.shared_workspace)
        .with_owner(sandbox.run_as());
    let executor = Executor::new(args.exec.clone(), sandbox);
    tracing::info!(
        languages = registry.codes().join(","),
        plugins = registry.plugins.plugins.len(),
        pooling = plugin_runtime.pooling(),
        scratch = %args.exec.scratch_dir.display(),
        startup_ms = started.elapsed().as_millis() as u64,
        "plugins loaded"
    );
    let state = Arc::new(AppState {
        settings: args.clone(),
        workspace,
        runtime: plugin_runtime,
        registry: RwLock::new(Arc::new(registry)),
        reload_error: RwLock::new(None),
        executor,
        metrics: Default::default(),
        started,
    });
    crate::api::reload::spawn(state.clone(), baseline);
    let shutdown = shutdown_signal()?;

    let app = router(state.clone());
    // TCP first: once the Unix socket accepts, as clients and probes check, every
    // listener does (and a TCP address in use leaves no socket file behind).
    let tcp = match args.tcp_addr {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?,
        ),
        None => None,
    };
    let unix = bind_unix(&args.socket_path, args.socket_mode, args.socket_gid)?;
    let _socket_guard = SocketGuard(args.socket_path.clone());
    tracing::info!(socket = %args.socket_path.display(), "listening on unix socket");
    let (stop_tx, stop_rx) = watch::channel(false);
    let header_timeout = Duration::from_secs(args.header_timeout);
    let mut servers = vec![tokio::spawn(serve_on(
        unix,
        app.clone(),
        header_timeout,
        stop_rx.clone(),
    ))];
    if let Some(tcp) = tcp {
        tracing::info!(addr = %tcp.local_addr()?, auth = args.auth_token.is_some(), "listening on tcp");
        servers.push(tokio::spawn(serve_on(tcp, app, header_timeout, stop_rx)));
    }

    shutdown.await;
    tracing::info!(
        grace_seconds = args.grace_seconds,
        "shutting down: no new connections; waiting for in-flight requests"
    );
    let _ = stop_tx.send(true);
    let _ = std::fs::remove_file(&args.socket_path);
    let all = futures_util::future::join_all(servers);
    if tokio::time::timeout(Duration::from_secs(args.grace_seconds), all)
        .await
        .is_err()
    {
        tracing::warn!("grace period over: killing what still runs");
    }
    Ok(())
}

/// The most descriptors the sidecar asks for: every connection holds one and every
/// execution about ten, and 64 Ki is far beyond the executions it runs at once.
const OPEN_FILES_WANTED: u64 = 1 << 16;

/// Raises the soft limit on open files towards the hard one (container runtimes now
/// start processes with a soft limit of 1024 under a hard one of 512 Ki or more): at
/// the soft limit, connections could no longer be accepted, nor pipes made for
/// executions, nor plugin files read. Executions get their own limit (1024, see
/// exec/process.rs).
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getter into a local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    let wanted = limit.rlim_max.min(OPEN_FILES_WANTED);
    if limit.rlim_cur >= wanted {
        return;
    }
    let from = limit.rlim_cur;
    limit.rlim_cur = wanted;
    // SAFETY: plain setter from a local; a soft limit at most the hard one.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } == 0 {
        tracing::debug!(from, to = wanted, "raised the open files limit");
    }
}

/// Serves `app` on `listener` until `stop` turns true; then accepts no more, lets each
/// open connection finish the request it is on and close, and returns once all have.
///
/// A connection that takes longer than `header_timeout` to send a request's head, or
/// sits idle that long between requests, is closed: one that connects and sends
/// nothing, or a header a byte at a time, would otherwise hold a task and a descriptor
/// for good (before any token is checked, on TCP).
async fn serve_on<L: axum::serve::Listener>(
    mut listener: L,
    app: axum::Router,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    // Each connection holds a receiver; `closed` tells when the last one is gone.
    let (open_tx, open_rx) = watch::channel(());
    loop {
        let io = tokio::select! {
            (io, _) = listener.accept() => io,
            () = stopped(&mut stop) => break,
        };
        // A body that stalls fails after the same idle time as a head (api/idle_body.rs).
        let app = app
            .clone()
            .map_request(move |req: axum::extract::Request<Incoming>| {
                req.map(|body| axum::body::Body::new(IdleBody::new(body, header_timeout)))
            });
        let service = hyper_util::service::TowerToHyperService::new(app);
        let mut stop = stop.clone();
        let open = open_rx.clone();
        let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
        // (Repoll: the task wakes itself reading a request body, see api/repoll.rs.)
        tokio::spawn(super::repoll::Repoll::new(async move {
            let _ = started_tx.send(());
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let conn = builder.serve_connection(TokioIo::new(io), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(open);
        }));
        // The new connection's task first (its request is usually there already):
        // the next `accept`, which mostly finds none waiting, comes after. That task
        // takes the worker's LIFO slot and wakes this one into it as it starts, so
        // this one resumes on the same worker once that task waits. (A `yield_now`
        // had the same order, but a task resumed from tokio's deferred list makes its
        // worker wake a parked one to search: a futex wake and an interrupt, on the
        // CPU the program just started on.)
        let _ = started.await;
    }
    drop(open_rx);
    open_tx.closed().await;
    // The last requests' log lines are tasks of their own (api/mod.rs, `observe`).
    tokio::task::yield_now().await;
}

/// Ends when `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// `TCP_HOST` / `TCP_PORT`, as the coding sidecar's later versions took them (host
/// default 127.0.0.1), when `TCP_ADDR` is not set.
fn legacy_tcp_addr() -> anyhow::Result<Option<std::net::SocketAddr>> {
    let Some(port) = std::env::var("TCP_PORT").ok().filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let host = std::env::var("TCP_HOST").ok().filter(|h| !h.is_empty());
    let host = host.as_deref().unwrap_or("127.0.0.1");
    let text = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    use std::net::ToSocketAddrs;
    let addr = text
        .to_socket_addrs()
        .map_err(|e| anyhow::anyhow!("TCP_HOST/TCP_PORT `{text}`: {e}"))?
        .next()
        .ok_or_else(|| anyhow::anyhow!("TCP_HOST/TCP_PORT `{text}` resolves to no address"))?;
    Ok(Some(addr))
}

/// Handles SIGTERM and SIGINT from now on (before the socket listens, so that no signal
/// finds them at their default action); the future ends at the first.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let handler =
        |kind| signal(kind).map_err(|e| anyhow::anyhow!("cannot handle a shutdown signal: {e}"));
    let mut term = handler(SignalKind::terminate())?;
    let mut int = handler(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}

/// Binds the socket: creates its directory, replaces a stale socket (one nobody
/// answers on), refuses a path that is something else or a live socket, sets the mode.
fn bind_unix(path: &Path, mode: u32, gid: Option<u32>) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            anyhow::anyhow!("cannot create the socket directory {}: {e}", dir.display())
        })?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                anyhow::bail!("{} is in use by a running server", path.display());
            }
            std::fs::remove_file(path).map_err(|e| {
                anyhow::anyhow!("cannot remove the stale socket {}: {e}", path.display())
            })?;
        }
        Ok(_) => anyhow::bail!(
            "{} exists and is not a socket: refusing to replace it",
            path.display()
        ),
        Err(_) => {}
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid))
            .map_err(|e| anyhow::anyhow!("cannot give {} to group {gid}: {e}", path.display()))?;
    }
    Ok(listener)
}

/// Removes the socket file when the server stops, however it stops.
struct SocketGuard(PathBuf);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
