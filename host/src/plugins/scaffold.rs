//! `sidecar plugin new NAME`: writes a plugin crate that builds as is and passes its own
//! golden test, for authors who start outside this repository.

use std::path::{Path, PathBuf};

/// Finds this repository's `plugins/sdk` from the executable's location
/// (`<repo>/target/release/sidecar`) or the current directory.
pub fn find_sdk() -> Option<PathBuf> {
    let mut starts = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        starts.push(exe);
    }
    if let Ok(cwd) = std::env::current_dir() {
        starts.push(cwd);
    }
    starts.into_iter().find_map(|start| {
        start
            .ancestors()
            .map(|d| d.join("plugins/sdk"))
            .find(|sdk| sdk.join("Cargo.toml").is_file())
    })
}

/// Writes the crate. `name` is the plugin's name and the language code it serves.
pub fn write(name: &str, dir: &Path, sdk: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !crate::config::languages::valid_code(name) || name.contains('.') || name.contains('+') {
        anyhow::bail!(
            "`{name}` is not a valid plugin name: use 1-32 characters of a-z, 0-9, `_`, `-`"
        );
    }
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        anyhow::bail!("{} exists and is not empty", dir.display());
    }
    let sdk =
        std::fs::canonicalize(sdk).map_err(|e| anyhow::anyhow!("SDK {}: {e}", sdk.display()))?;
    let ident: String = {
        let mut chars = name.chars().filter(|c| c.is_ascii_alphanumeric());
        match chars.next() {
            Some(first) if first.is_ascii_alphabetic() => {
                first.to_ascii_uppercase().to_string() + &chars.collect::<String>()
            }
            _ => format!("Lang{}", name.replace(['-', '_'], "")),
        }
    };
    let files = [
        (
            "Cargo.toml",
            format!(
                r#"[package]
name = "sidecar-plugin-{name}"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
sidecar-plugin-sdk = {{ path = "{sdk}" }}

# A crate of its own, not a member of any surrounding workspace.
[workspace]

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
panic = "abort"
"#,
                sdk = sdk.display()
            ),
        ),
        (
            "src/lib.rs",
            format!(
                r##"//! The `{name}` language plugin for sidecar.
//!
//! Build: `cargo build --release --target wasm32-wasip2`, then
//! `sidecar plugin check target/wasm32-wasip2/release/sidecar_plugin_{snake}.wasm` and
//! copy the file into the sidecar's plugins directory (no restart needed).

use sidecar_plugin_sdk::*;

pub struct {ident};

impl Language for {ident} {{
    fn describe() -> PluginInfo {{
        PluginInfo::new("{name}", env!("CARGO_PKG_VERSION")).language(
            // code, display name, file extension, code file name, run command template
            LanguageConfig::new("{name}", "{ident}", "{name}", "code.{name}", "{name} {{file}}"),
            &[],
        )
    }}

    fn plan(config: LanguageConfig, request: PlanRequest) -> Result<Plan, PlanError> {{
        let mut p = Planner::new(&config, &request)?;
        p.write_code();
        p.compile_from_config()?;
        p.run_from_config()
    }}
}}

export_plugin!({ident});

#[cfg(test)]
mod tests {{
    use super::*;
    use sidecar_plugin_sdk::testing::*;

    #[test]
    fn hello_world() {{
        assert_plan(
            plan::<{ident}>(config::<{ident}>("{name}"), request("hello")),
            r#"
            file scratch/code.{name}
              | hello
              (no newline at end)
            run {name} /scratch/code.{name}
            "#,
        );
    }}
}}
"##,
                snake = name.replace('-', "_"),
            ),
        ),
        (
            "README.md",
            format!(
                "# sidecar-plugin-{name}\n\nA sidecar language plugin. Test the plan natively, then build the component:\n\n```sh\ncargo test\nrustup target add wasm32-wasip2\ncargo build --release --target wasm32-wasip2\nsidecar plugin check target/wasm32-wasip2/release/sidecar_plugin_{snake}.wasm\n```\n\nSee the plan the host gets, then install it (a running sidecar picks it up, no restart):\n\n```sh\nmkdir -p plugins && cp target/wasm32-wasip2/release/sidecar_plugin_{snake}.wasm plugins/{name}.wasm\necho 'echo hello' > hello.{name}\nsidecar plan --plugins-dir plugins --languages /dev/null hello.{name}\ncp plugins/{name}.wasm /path/to/the/sidecar/plugins/\n```\n\nSee docs/plugins.md in the sidecar repository.\n",
                snake = name.replace('-', "_")
            ),
        ),
    ];
    let files = files
        .into_iter()
        .chain([(".gitignore", "/target\n/plugins\n".to_string())]);
    let mut written = Vec::new();
    for (rel, content) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, content)?;
        written.push(path);
    }
    Ok(written)
}
