//! PHP for sidecar.
//!
//! Quirks handled:
//! - Code without an opening tag still runs: `<?php\n` is prepended when the code
//!   opens no PHP tag itself. A file that opens one anywhere (`<?php` or `<?=`,
//!   checked case-insensitively) is a template and stays as written, text before the
//!   tag included; the one exception is blank space (and a UTF-8 byte-order mark)
//!   before a tag that starts the code, which is dropped, since PHP would print it
//!   and it is almost always an accident of how the code was pasted.
//! - A `#!` line stays first (the PHP CLI skips it); the tag goes after it.
//! - A leading short tag (`<?` followed by a blank) becomes `<?php`: short tags are
//!   off in most `php.ini` files, where the code would be printed instead of run.
//! - Errors go to stderr exactly once, whatever the image's `php.ini` says:
//!   `-d display_errors=stderr -d log_errors=0` (Debian's CLI ini logs them to stderr,
//!   an ini-less official image displays them on stdout).
//! - Empty code is valid (PHP prints nothing).

use sidecar_plugin_sdk::*;

/// The PHP plugin.
pub struct Php;

impl Language for Php {
    fn describe() -> PluginInfo {
        PluginInfo::new("php", env!("CARGO_PKG_VERSION")).language(
            LanguageConfig::new(
                "php",
                "PHP",
                "php",
                "code.php",
                "php -d display_errors=stderr -d log_errors=0 {file}",
            ),
            &[],
        )
    }

    fn plan(config: LanguageConfig, request: PlanRequest) -> Result<Plan, PlanError> {
        let mut p = Planner::new(&config, &request)?;
        p.write_code_as(with_open_tag(&request.code));
        p.compile_from_config()?;
        p.run_from_config()
    }
}

/// The code, made to start in PHP mode (see the crate docs).
pub fn with_open_tag(code: &str) -> String {
    // A shebang line stays first.
    let (shebang, rest) = if code.starts_with("#!") {
        match code.find('\n') {
            Some(i) => (code[..=i].to_string(), &code[i + 1..]),
            None => (format!("{code}\n"), ""),
        }
    } else {
        (String::new(), code)
    };
    let body = rest.strip_prefix('\u{feff}').unwrap_or(rest);
    let trimmed = body.trim_start();
    if starts_with_ignore_case(trimmed, "<?php") || trimmed.starts_with("<?=") {
        return format!("{shebang}{trimmed}");
    }
    if let Some(after) = trimmed.strip_prefix("<?") {
        if after.is_empty() || after.starts_with(|c: char| c.is_whitespace()) {
            return format!("{shebang}<?php{after}");
        }
    }
    if opens_tag(rest) {
        return code.to_string();
    }
    format!("{shebang}<?php\n{rest}")
}

/// Whether `<?php` (any case) or `<?=` occurs in `text`.
fn opens_tag(text: &str) -> bool {
    text.match_indices("<?")
        .any(|(i, _)| starts_with_ignore_case(&text[i..], "<?php") || text[i..].starts_with("<?="))
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

export_plugin!(Php);

#[cfg(test)]
mod tests {
    use super::*;
    use sidecar_plugin_sdk::testing::*;

    fn php() -> LanguageConfig {
        config::<Php>("php")
    }

    #[test]
    fn hello_world_without_a_tag() {
        assert_plan(
            plan::<Php>(php(), request("echo \"hello\\n\";\n")),
            r#"
            file scratch/code.php
              | <?php
              | echo "hello\n";
            run php -d display_errors=stderr -d log_errors=0 /scratch/code.php
            "#,
        );
    }

    #[test]
    fn open_tags() {
        // Already opened: unchanged.
        assert_eq!(with_open_tag("<?php echo 1;"), "<?php echo 1;");
        assert_eq!(with_open_tag("<?PHP\necho 1;"), "<?PHP\necho 1;");
        assert_eq!(with_open_tag("<?= 1 + 1 ?>\n"), "<?= 1 + 1 ?>\n");
        // Blank space and a BOM before the leading tag are dropped.
        assert_eq!(with_open_tag("\n\n  <?php echo 1;"), "<?php echo 1;");
        assert_eq!(with_open_tag("\u{feff}<?php echo 1;"), "<?php echo 1;");
        // A template keeps its text.
        assert_eq!(
            with_open_tag("Hello <?php echo 'x'; ?>!\n"),
            "Hello <?php echo 'x'; ?>!\n"
        );
        assert_eq!(with_open_tag("<h1><?= $t ?></h1>"), "<h1><?= $t ?></h1>");
        // Short tags become full tags; `<?xml` is not a tag.
        assert_eq!(with_open_tag("<? echo 1;"), "<?php echo 1;");
        assert_eq!(with_open_tag("<?\necho 1;"), "<?php\necho 1;");
        assert_eq!(
            with_open_tag("<?xml version=\"1.0\"?>"),
            "<?php\n<?xml version=\"1.0\"?>"
        );
        // No tag: prepended.
        assert_eq!(with_open_tag("echo 1;"), "<?php\necho 1;");
        assert_eq!(with_open_tag(""), "<?php\n");
        assert_eq!(with_open_tag("$s = '<?p';"), "<?php\n$s = '<?p';");
    }

    #[test]
    fn shebang_stays_first() {
        assert_eq!(
            with_open_tag("#!/usr/bin/env php\necho 1;"),
            "#!/usr/bin/env php\n<?php\necho 1;"
        );
        assert_eq!(
            with_open_tag("#!/usr/bin/env php\n<?php echo 1;"),
            "#!/usr/bin/env php\n<?php echo 1;"
        );
        assert_eq!(
            with_open_tag("#!/usr/bin/php\n  <?php echo 1;"),
            "#!/usr/bin/php\n<?php echo 1;"
        );
        assert_eq!(with_open_tag("#!/usr/bin/php"), "#!/usr/bin/php\n<?php\n");
    }

    #[test]
    #[ignore = "needs php"]
    fn real_php() {
        let out = execute::<Php>(
            php(),
            "\n$x = $argv[1] ?? 'none';\necho \"hi $x\\n\";\necho $undefined;\n",
            &["a b"],
            &[],
            None,
        );
        assert_eq!(
            (out.stage, out.stdout.as_str()),
            ("run", "hi a b\n"),
            "{out:?}"
        );
        assert_eq!(
            out.stderr.matches("Undefined variable").count(),
            1,
            "{out:?}"
        );
        let out = execute::<Php>(
            php(),
            "<ul><?php foreach ([1, 2] as $i): ?><li><?= $i ?></li><?php endforeach; ?></ul>\n",
            &[],
            &[],
            None,
        );
        assert_eq!(out.stdout, "<ul><li>1</li><li>2</li></ul>\n", "{out:?}");
    }
}
