//! `sidecar run FILE`: one execution through the plugins and the executor, without a
//! server. Prints the program's output (or the whole outcome as JSON) and exits with
//! the program's exit code.

use std::io::Write;
use std::sync::Arc;

use super::{ExecuteError, ExecuteRequest, Executor, Status};
use crate::cli::{pick_language, RunArgs};
use crate::exec::sandbox::Sandbox;

pub fn cli_run(args: RunArgs) -> anyhow::Result<i32> {
    let (_runtime, registry) = args.plugins.registry()?;
    let language = pick_language(&registry, args.language.as_deref(), &args.file)?;
    let code = std::fs::read_to_string(&args.file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.file.display()))?;
    let stdin = match &args.stdin {
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let temp;
    let work_dir = match &args.workdir {
        Some(dir) => std::fs::canonicalize(dir)?,
        None => {
            temp = TempDir::new(&args.exec.scratch_dir)?;
            temp.0.clone()
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async {
        let mut settings = args.exec.sandbox_settings();
        settings.visible.push(work_dir.clone());
        settings.workspace = Some(work_dir.clone());
        let sandbox = Arc::new(Sandbox::detect(settings));
        let executor = Executor::new(args.exec.clone(), sandbox);
        executor
            .execute(
                &language,
                ExecuteRequest {
                    code,
                    files: Vec::new(),
                    stdin,
                    args: args.args.clone(),
                    timeout: Some(args.timeout as f64),
                    work_dir,
                    work_dir_fd: None,
                },
            )
            .await
    });
    // The scratch dir and cgroup are removed on the clean-up thread: before exiting.
    drop(runtime);
    crate::exec::background::flush(std::time::Duration::from_secs(5));
    let outcome = match outcome {
        Ok(o) => o,
        Err(ExecuteError::MissingProgram(p)) => anyhow::bail!(
            "the {} toolchain is not installed: `{p}` was not found on PATH",
            language.settings.name
        ),
        Err(e) => anyhow::bail!("{e}"),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        let mut out = std::io::stdout();
        let mut err = std::io::stderr();
        for stage in [&outcome.compile, &outcome.run].into_iter().flatten() {
            out.write_all(stage.stdout.as_bytes())?;
            err.write_all(stage.stderr.as_bytes())?;
        }
        if outcome.status != Status::Ok {
            eprintln!("[sidecar] status: {}", outcome.status.as_str());
        }
    }
    Ok(outcome.exit_code().unwrap_or(1))
}

/// A temporary work dir for one run, removed afterwards.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(parent: &std::path::Path) -> std::io::Result<Self> {
        let dir = parent.join(format!("run-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = crate::exec::tree::remove_tree(&self.0);
    }
}
