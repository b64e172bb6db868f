//! The `sidecar` executable: parses the command line and dispatches.

use clap::Parser;
use sidecar::cli::{self, Cli, Command, PluginCommand};

fn main() {
    let cli = Cli::parse();
    let json_logs = match &cli.command {
        Command::Serve(args) => args.log_format.eq_ignore_ascii_case("json"),
        _ => std::env::var("SIDECAR_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")),
    };
    let level = match &cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    sidecar::api::logging::init(json_logs, level);
    let result = match cli.command {
        Command::Serve(args) => sidecar::api::serve(*args),
        Command::Run(args) => sidecar::runner::cli::cli_run(args),
        Command::Languages(args) => cli::languages(args),
        Command::Plan(args) => cli::plan(args),
        Command::Plugin(PluginCommand::Check { file, cache_dir }) => {
            cli::plugin_check(file, cache_dir)
        }
        Command::Healthcheck { socket_path, path } => cli::healthcheck(&socket_path, &path),
        Command::Plugin(PluginCommand::New { name, dir, sdk }) => cli::plugin_new(&name, dir, sdk),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
