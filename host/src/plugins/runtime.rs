//! The wasmtime runtime: one engine and linker, a pre-instantiated component per
//! plugin, a store and instance per call (kept for the same session's next call: see
//! `Warm`), and the limits that keep a plugin from hurting the host.
//!
//! Plugins get an empty WASI context: no preopened directories, no environment, no
//! sockets, no name lookups, no stdin; stderr goes to a small in-memory pipe so a
//! panicking plugin's message can be shown. Time is bounded by epoch interruption (the
//! epoch advances every [`TICK`] while a call is in progress: see `ticker`) and memory
//! by [`StoreLimits`].
//!
//! Calls are async (wasmtime's async support: the guest runs on a fiber), so a plan
//! call runs on the request's tokio worker like any other step, with no hand-off of
//! the worker to another thread (`block_in_place` cost ~30 µs a call), and a plugin
//! that loops yields to the worker's other tasks at every tick until its deadline.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::cache::Cache;
use super::model::{LanguageSettings, Plan, PlanRefusal, PlanRequest, PluginInfo};
use super::ticker::Ticker;
pub use super::ticker::TICK;
use super::v0_1;

/// Limits applied to every plugin call.
#[derive(Debug, Clone, Copy)]
pub struct PluginLimits {
    /// Linear memory a plugin may use (bytes).
    pub memory: usize,
    /// Wall-clock time one call may take.
    pub timeout: Duration,
    /// Plugin calls that may run at once (instances in the pool).
    pub concurrency: usize,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            memory: 128 << 20,
            timeout: Duration::from_secs(1),
            concurrency: 16,
        }
    }
}

/// Why a plugin could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}: {message}")]
pub struct LoadError {
    pub file: String,
    pub message: String,
}

/// Why a plan call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The plugin refused the input (the caller's fault: 422).
    #[error("{0}")]
    Refused(PlanRefusal),
    /// The plugin misbehaved: trap, time or memory exhausted, invalid plan (500).
    #[error("plugin `{plugin}` failed: {message}")]
    Failed { plugin: String, message: String },
}

/// Per-store state: the empty WASI context, the store's limits and the deadline of
/// the call in progress.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: Limits,
    deadline: Instant,
}

/// [`StoreLimits`], recording how large the linear memories have grown.
struct Limits {
    inner: StoreLimits,
    /// The largest size a memory of the instance has been allowed to grow to.
    memory: usize,
}

impl wasmtime::ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        if allowed {
            self.memory = self.memory.max(desired);
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.memory_grow_failed(error)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl v0_1::types::Host for PluginState {}

/// The engine, linker and shared limits. Cheap to share behind an `Arc`.
pub struct Runtime {
    engine: Engine,
    linker: Linker<PluginState>,
    cache: Option<Cache>,
    limits: PluginLimits,
    slots: tokio::sync::Semaphore,
    /// Instances kept warm for later calls, over all plugins (at most
    /// `limits.concurrency`, which the pool has room for beside the calls'; see
    /// [`Warm`]).
    warm: std::sync::atomic::AtomicUsize,
    pooling: bool,
    ticker: Arc<Ticker>,
}

/// A loaded plugin, ready to be called.
pub struct Plugin {
    pub info: PluginInfo,
    pub path: PathBuf,
    pub sha256: String,
    /// The WIT interface version the plugin was built against.
    pub interface: &'static str,
    /// Whether its compiled code came from the disk cache.
    pub from_cache: bool,
    pre: v0_1::LanguagePluginPre<PluginState>,
    /// Instances whose last call returned normally, for the next calls of the same
    /// work dir; the most recently used last.
    warm: std::sync::Mutex<Vec<Warm>>,
    runtime: Arc<Runtime>,
}

/// An instance of a plugin with its store, kept for the next call with the same work
/// dir (one session's): making a store and an instance, and resetting the pool slot
/// afterwards, took two thirds of a plan call (docs/benchmarks.md). A call for
/// another work dir always gets an instance no other session's call has used, so what
/// a plugin keeps between calls (it should keep nothing: `plan` is a pure function)
/// never crosses from one session to another.
struct Warm {
    /// The work dir of the calls it served.
    key: String,
    store: Store<PluginState>,
    instance: v0_1::LanguagePlugin,
    stderr: MemoryOutputPipe,
    calls: u32,
    /// When its last call returned.
    since: Instant,
}

/// Calls one instance serves before it is dropped for a fresh one.
const WARM_CALLS: u32 = 256;
/// Linear memory past which an instance is not kept (a plugin that leaks starts over).
const WARM_MEMORY: usize = 16 << 20;
/// Instances kept per plugin (for as many sessions), the least recently used dropped
/// first.
const WARM_PER_PLUGIN: usize = 4;
/// How long an instance is kept unused.
const WARM_IDLE: Duration = Duration::from_secs(60);

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.info.name)
            .field("version", &self.info.version)
            .field("path", &self.path)
            .finish()
    }
}

impl Runtime {
    /// Builds the engine (with the pooling allocator when the machine allows it), the
    /// linker and the epoch ticker. `cache_dir`: where compiled plugins are kept.
    pub fn new(limits: PluginLimits, cache_dir: Option<PathBuf>) -> anyhow::Result<Arc<Self>> {
        let (engine, pooling) = match Engine::new(&engine_config(&limits, true)) {
            Ok(engine) => (engine, true),
            Err(e) => {
                tracing::warn!("pooling allocator unavailable ({e}); using on-demand allocation");
                let engine = Engine::new(&engine_config(&limits, false))
                    .map_err(|e| anyhow::anyhow!("cannot create the wasm engine: {e}"))?;
                (engine, false)
            }
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| anyhow::anyhow!("cannot link WASI: {e}"))?;
        v0_1::LanguagePlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| anyhow::anyhow!("cannot link the plugin interface: {e}"))?;
        let ticker = Ticker::start(engine.clone())?;
        let cache = cache_dir.map(|dir| Cache::new(dir, &engine));
        Ok(Arc::new(Runtime {
            engine,
            linker,
            cache,
            limits,
            slots: tokio::sync::Semaphore::new(limits.concurrency.max(1)),
            warm: std::sync::atomic::AtomicUsize::new(0),
            pooling,
            ticker,
        }))
    }

    /// Whether the pooling allocator is in use.
    pub fn pooling(&self) -> bool {
        self.pooling
    }

    /// The limits applied to every call.
    pub fn limits(&self) -> PluginLimits {
        self.limits
    }

    /// Loads a plugin file: checks it is a component of a supported interface version,
    /// compiles it (or loads the cached compilation), links it, and asks it to describe
    /// itself.
    pub fn load(self: &Arc<Self>, path: &Path) -> Result<Plugin, LoadError> {
        let file = path.display().to_string();
        let fail = |message: String| LoadError {
            file: file.clone(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        check_header(&bytes).map_err(&fail)?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let (component, from_cache) = self.compile(&bytes, &sha256).map_err(&fail)?;
        let interface = check_interface(&self.engine, &component).map_err(&fail)?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            fail(format!(
                "cannot be linked: {}. Plugins may import only WASI interfaces without filesystem, network or environment access (what wasm32-wasip2's std uses).",
                error_text(&e)
            ))
        })?;
        let pre = v0_1::LanguagePluginPre::new(pre).map_err(|e| {
            fail(format!(
                "does not implement the world `{}/language-plugin@{}`: {}; {}. A plugin exports the functions `describe` and `plan` of wit/v0.1/language.wit (with the Rust SDK: a library crate, `crate-type = [\"cdylib\"]`, that calls `export_plugin!`; see docs/plugins.md).",
                v0_1::PACKAGE,
                v0_1::VERSION,
                error_text(&e),
                describe_exports(&self.engine, &component)
            ))
        })?;
        let mut plugin = Plugin {
            info: PluginInfo {
                name: String::new(),
                version: String::new(),
                languages: Vec::new(),
            },
            path: path.to_path_buf(),
            sha256,
            interface,
            from_cache,
            pre,
            warm: std::sync::Mutex::new(Vec::new()),
            runtime: self.clone(),
        };
        plugin.info = plugin
            .describe()
            .map_err(|e| fail(format!("describe() failed: {e}")))?;
        validate_info(&plugin.info).map_err(&fail)?;
        Ok(plugin)
    }

    fn compile(&self, bytes: &[u8], sha256: &str) -> Result<(Component, bool), String> {
        if let Some(cache) = &self.cache {
            if let Some(component) = cache.get(&self.engine, sha256) {
                return Ok((component, true));
            }
        }
        let component = Component::from_binary(&self.engine, bytes)
            .map_err(|e| format!("not a valid WebAssembly component: {}", error_text(&e)))?;
        if let Some(cache) = &self.cache {
            cache.put(sha256, &component);
        }
        Ok((component, false))
    }

    fn store(&self) -> (Store<PluginState>, MemoryOutputPipe) {
        let stderr = MemoryOutputPipe::new(4096);
        let wasi = WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory)
            .instances(32)
            .tables(64)
            .memories(16)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(
            &self.engine,
            PluginState {
                wasi,
                table: ResourceTable::new(),
                limits: Limits {
                    inner: limits,
                    memory: 0,
                },
                deadline: Instant::now() + self.limits.timeout,
            },
        );
        store.limiter(|s| &mut s.limits);
        // Yield to the worker at every tick; trap once the call has had its time.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |store| {
            if Instant::now() >= store.data().deadline {
                Err(Trap::Interrupt.into())
            } else {
                Ok(wasmtime::UpdateDeadline::Yield(1))
            }
        });
        (store, stderr)
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let kept = self.warm.get_mut().unwrap_or_else(|e| e.into_inner()).len();
        self.forget(kept);
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker.stop();
    }
}

/// Linear memory of a pooled slot kept resident (and zeroed page by page) between
/// calls; see [`engine_config`].
const KEEP_RESIDENT: usize = 1 << 20;

fn engine_config(limits: &PluginLimits, pooling: bool) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.parallel_compilation(true);
    // Plugins are small: reserve only what they may use, so the pool stays modest.
    config.memory_reservation(limits.memory as u64);
    config.memory_guard_size(64 << 10);
    config.memory_reservation_for_growth(0);
    if pooling {
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        // Room for the calls in progress and as many instances kept warm.
        let n = 2 * limits.concurrency as u32;
        pool.total_component_instances(n)
            .total_core_instances(n * 4)
            .total_memories(n * 2)
            .total_tables(n * 4)
            .max_memory_size(limits.memory)
            .max_memories_per_component(4)
            .total_stacks(n);
        // After a call, reset the slot's memory by scanning for the pages it dirtied
        // (PAGEMAP_SCAN, Linux >= 6.7; `Auto` falls back elsewhere) and zeroing them,
        // up to KEEP_RESIDENT, instead of `madvise`. A plan call dirties less than
        // 512 KiB (py), and madvise's page faults and cross-CPU TLB flushes were half
        // the cost of a call (32 -> 15 µs p50, and no slow-down with concurrent calls;
        // docs/benchmarks.md). Costs at most KEEP_RESIDENT of RSS per warm slot.
        pool.linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(64 << 10)
            .pagemap_scan(wasmtime::Enabled::Auto);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// Runs a plugin call to completion from synchronous code, on a thread of its own:
/// outside any tokio runtime, wasmtime-wasi runs it on its own runtime (the caller may
/// be a runtime's worker, where blocking on a runtime panics). `None` if it panicked.
fn run_blocking<T: Send>(call: impl std::future::Future<Output = T> + Send) -> Option<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| wasmtime_wasi::runtime::in_tokio(call))
            .join()
            .ok()
    })
}

/// Rejects files that are not components before asking the compiler, with a message
/// that says what to do.
fn check_header(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 8 || &bytes[0..4] != b"\0asm" {
        return Err("not a WebAssembly file (no `\\0asm` header)".into());
    }
    if bytes[6..8] == [0, 0] {
        return Err(
            "is a core WebAssembly module, not a component: build it with `cargo build --target wasm32-wasip2` (or wrap it with `wasm-tools component new`)"
                .into(),
        );
    }
    Ok(())
}

/// Finds which `sidecar:language` version the component was built against, from the
/// names of its imports and exports, and refuses versions this host does not know.
fn check_interface(engine: &Engine, component: &Component) -> Result<&'static str, String> {
    let ty = component.component_type();
    let names = ty
        .imports(engine)
        .map(|(n, _)| n.to_string())
        .chain(ty.exports(engine).map(|(n, _)| n.to_string()));
    for name in names {
        if let Some(rest) = name.strip_prefix(&format!("{}/", v0_1::PACKAGE)) {
            let version = rest.split_once('@').map(|(_, v)| v).unwrap_or("");
            if version != v0_1::VERSION {
                let (older, hint) = match version_cmp(version, v0_1::VERSION) {
                    std::cmp::Ordering::Less => (
                        "an older",
                        "rebuild it against wit/v0.1/language.wit (with the Rust SDK: depend on this sidecar's plugins/sdk and rebuild; other languages: regenerate the bindings from wit/v0.1)",
                    ),
                    _ => (
                        "a newer",
                        "run it with a sidecar that supports that version, or rebuild the plugin against wit/v0.1/language.wit (with the Rust SDK: depend on this sidecar's plugins/sdk)",
                    ),
                };
                return Err(format!(
                    "was built against {older} interface, {}@{version}; this host supports {}@{}: {hint}",
                    v0_1::PACKAGE,
                    v0_1::PACKAGE,
                    v0_1::VERSION
                ));
            }
        }
    }
    Ok(v0_1::VERSION)
}

/// What a component exports, for the message of a plugin of the wrong world.
fn describe_exports(engine: &Engine, component: &Component) -> String {
    let names: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(n, _)| n.to_string())
        .collect();
    if names.is_empty() {
        return "the component exports nothing".to_string();
    }
    let list = names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.iter().any(|n| n.starts_with("wasi:cli/run@")) {
        format!(
            "the component exports {list}: it is a program (a command with a `main`), not a plugin"
        )
    } else {
        format!("the component exports {list}")
    }
}

fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let parse = |v: &str| {
        v.split('.')
            .map(|p| p.parse::<u64>().unwrap_or(0))
            .collect::<Vec<_>>()
    };
    parse(a).cmp(&parse(b))
}

fn validate_info(info: &PluginInfo) -> Result<(), String> {
    if info.name.is_empty() || !crate::config::languages::valid_code(&info.name) {
        return Err(format!(
            "describe() returned the plugin name `{}`: use 1-32 characters of a-z, 0-9, `_`, `-`",
            info.name
        ));
    }
    for l in &info.languages {
        if !crate::config::languages::valid_code(&l.code) {
            return Err(format!("describe() returned the language code `{}`: use 1-32 characters of a-z, 0-9, `_`, `-`, `+`, `.`", l.code));
        }
    }
    Ok(())
}

/// Renders a wasmtime error with its causes on one line.
fn error_text(e: &wasmtime::Error) -> String {
    format!("{e:#}")
}

impl Plugin {
    /// Asks the plugin to describe itself (done once at load, from synchronous code).
    pub fn describe(&self) -> Result<PluginInfo, String> {
        run_blocking(self.describe_async())
            .unwrap_or_else(|| Err("the describe() call panicked".into()))
    }

    async fn describe_async(&self) -> Result<PluginInfo, String> {
        let _slot = self.runtime.slots.acquire().await;
        let _ticking = self.runtime.ticker.ticking();
        let (mut store, stderr) = self.runtime.store();
        let result = match self.pre.instantiate_async(&mut store).await {
            Ok(p) => p.call_describe(&mut store).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(info) => Ok(info.into()),
            Err(e) => Err(self.explain(&e, &stderr)),
        }
    }

    /// Asks the plugin for a plan: tens of microseconds when well behaved, at most the
    /// plugin timeout (yielding at every tick meanwhile).
    pub async fn plan(
        &self,
        config: &LanguageSettings,
        request: PlanRequest,
    ) -> Result<Plan, CallError> {
        let _slot = self.runtime.slots.acquire().await;
        let _ticking = self.runtime.ticker.ticking();
        let failed = |message: String| CallError::Failed {
            plugin: self.info.name.clone(),
            message,
        };
        let mut warm = match self.take_warm(&request.work_dir) {
            Some(warm) => warm,
            None => {
                let (mut store, stderr) = self.runtime.store();
                match self.pre.instantiate_async(&mut store).await {
                    Ok(instance) => Warm {
                        key: request.work_dir.clone(),
                        store,
                        instance,
                        stderr,
                        calls: 0,
                        since: Instant::now(),
                    },
                    Err(e) => return Err(failed(self.explain(&e, &stderr))),
                }
            }
        };
        warm.store.data_mut().deadline = Instant::now() + self.runtime.limits.timeout;
        warm.store.set_epoch_deadline(1);
        warm.calls += 1;
        let config: v0_1::types::LanguageConfig = config.into();
        let request: v0_1::types::PlanRequest = request.into();
        let result = warm
            .instance
            .call_plan(&mut warm.store, &config, &request)
            .await;
        let stderr = warm.stderr.clone();
        if result.is_ok() {
            self.give_back(warm);
        }
        match result {
            Ok(Ok(plan)) => {
                let plan: Plan = plan.into();
                plan.validate()
                    .map_err(|m| failed(format!("returned an invalid plan: {m}")))?;
                Ok(plan)
            }
            Ok(Err(refusal)) => Err(CallError::Refused(refusal.into())),
            Err(e) => Err(failed(self.explain(&e, &stderr))),
        }
    }

    /// [`Plugin::plan`] from synchronous code (the CLI, benchmarks).
    pub fn plan_blocking(
        &self,
        config: &LanguageSettings,
        request: PlanRequest,
    ) -> Result<Plan, CallError> {
        run_blocking(self.plan(config, request)).unwrap_or_else(|| {
            Err(CallError::Failed {
                plugin: self.info.name.clone(),
                message: "the plan() call panicked".into(),
            })
        })
    }

    /// The instance kept for calls with this work dir, if there is one. (Instances
    /// unused for [`WARM_IDLE`] are dropped on the way.)
    fn take_warm(&self, key: &str) -> Option<Warm> {
        let (found, expired) = {
            let mut warm = self.warm.lock().unwrap_or_else(|e| e.into_inner());
            let expired: Vec<Warm> = match warm.iter().position(|w| w.since.elapsed() < WARM_IDLE) {
                Some(0) => Vec::new(),
                Some(n) => warm.drain(..n).collect(),
                None => std::mem::take(&mut *warm),
            };
            let found = warm
                .iter()
                .rposition(|w| w.key == key)
                .map(|i| warm.remove(i));
            (found, expired)
        };
        self.forget(expired.len() + usize::from(found.is_some()));
        found
    }

    /// Keeps an instance whose call returned (not one that trapped, which may have left
    /// its state half-way) for the next call with its work dir, unless it wrote to
    /// stderr, has grown large or served its share of calls, or the pool has no room
    /// for it.
    fn give_back(&self, mut warm: Warm) {
        use std::sync::atomic::Ordering::Relaxed;
        let keep = warm.calls < WARM_CALLS
            && warm.store.data().limits.memory <= WARM_MEMORY
            && warm.stderr.contents().is_empty();
        if !keep {
            return;
        }
        warm.since = Instant::now();
        let evicted = {
            let mut kept = self.warm.lock().unwrap_or_else(|e| e.into_inner());
            let evicted = (kept.len() >= WARM_PER_PLUGIN).then(|| kept.remove(0));
            if evicted.is_none()
                && self.runtime.warm.fetch_add(1, Relaxed) >= self.runtime.limits.concurrency
            {
                self.runtime.warm.fetch_sub(1, Relaxed);
                return;
            }
            kept.push(warm);
            evicted
        };
        drop(evicted);
    }

    /// Counts instances no longer kept.
    fn forget(&self, n: usize) {
        if n > 0 {
            self.runtime
                .warm
                .fetch_sub(n, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn explain(&self, e: &wasmtime::Error, stderr: &MemoryOutputPipe) -> String {
        let limits = self.runtime.limits;
        let mut message = match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => format!("ran past its time limit of {:?}", limits.timeout),
            _ if format!("{e:?}").contains("forcing trap when growing memory") => {
                format!("ran past its memory limit of {} MiB", limits.memory >> 20)
            }
            Some(trap) => format!("trapped: {trap}"),
            None => error_text(e),
        };
        let output = stderr.contents();
        let output = String::from_utf8_lossy(&output);
        let output = output.trim();
        if !output.is_empty() {
            message.push_str(&format!(" (plugin stderr: {output})"));
        }
        message
    }
}
