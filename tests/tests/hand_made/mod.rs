//! Plugin components written by hand in WebAssembly text, for what no build makes:
//! plugins that misbehave while being loaded. Shared by plugins.rs and reload.rs.

/// A component of the right world, written by hand, whose `describe` runs `body` (core
/// wasm returning the address of its result) and whose `plan` traps: a plugin that
/// misbehaves while it is being loaded. (The types are exported by the component
/// itself rather than imported from `sidecar:language/types`: the host checks them
/// structurally.)
pub fn describing(body: &str) -> Vec<u8> {
    let text = r#"
(component
  (core module $m
    (memory (export "memory") 1)
    (func (export "describe") (result i32) DESCRIBE)
    (func (export "plan") (param i32) (result i32) (unreachable))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) (unreachable)))
  (core instance $i (instantiate $m))
  (type $pairs (list (tuple string string)))
  (type $lc' (record
    (field "code" string) (field "name" string) (field "file-extension" string)
    (field "code-filename" string) (field "compile-command" (option string))
    (field "run-command" string) (field "environment" $pairs)
    (field "timeout-multiplier" f64) (field "memory-multiplier" f64) (field "options" $pairs)))
  (export $lc "language-config" (type $lc'))
  (type $li' (record (field "defaults" $lc) (field "aliases" (list string))))
  (export $li "language-info" (type $li'))
  (type $pi' (record (field "name" string) (field "version" string) (field "languages" (list $li))))
  (export $pi "plugin-info" (type $pi'))
  (type $if' (record (field "path" string) (field "content" (list u8))))
  (export $if "input-file" (type $if'))
  (type $pr' (record (field "code" string) (field "files" (list $if)) (field "args" (list string))
    (field "has-stdin" bool) (field "work-dir" string) (field "scratch-dir" string)))
  (export $pr "plan-request" (type $pr'))
  (type $fl' (enum "scratch" "work-dir"))
  (export $fl "file-location" (type $fl'))
  (type $pf' (record (field "path" string) (field "location" $fl) (field "content" (list u8))
    (field "executable" bool)))
  (export $pf "plan-file" (type $pf'))
  (type $cmd' (record (field "argv" (list string)) (field "env" $pairs) (field "cwd" (option string))))
  (export $cmd "command" (type $cmd'))
  (type $plan' (record (field "files" (list $pf)) (field "compile" (list $cmd)) (field "run" $cmd)))
  (export $plan "plan-record" (type $plan'))
  (type $pe' (variant (case "invalid-input" string) (case "unsupported" string)))
  (export $pe "plan-error" (type $pe'))
  (func $describe (result $pi)
    (canon lift (core func $i "describe") (memory $i "memory") (realloc (func $i "realloc"))))
  (export "describe" (func $describe))
  (func $plan (param "config" $lc) (param "request" $pr) (result (result $plan (error $pe)))
    (canon lift (core func $i "plan") (memory $i "memory") (realloc (func $i "realloc"))))
  (export "plan" (func $plan)))
"#;
    wat::parse_str(text.replace("DESCRIBE", body)).unwrap()
}
