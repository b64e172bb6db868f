"""A sidecar language plugin written in Python: Perl 5.

Built into a WebAssembly component with componentize-py (see build.sh), it
implements the same WIT world as the Rust plugins (wit/v0.1/language.wit) and is
served by the unchanged host. It shows the interface is language-neutral.

Quirks handled: output is UTF-8 (-CSDA); the caller's modules in the work dir
are found (-I{workdir}); warnings are on unless the settings turn them off
(option `warnings = false`); code is written to the private scratch dir.
"""

import shlex

import wit_world
from wit_world.imports import types
from componentize_py_types import Err

VERSION = "0.1.0"


def defaults() -> types.LanguageConfig:
    return types.LanguageConfig(
        code="perl",
        name="Perl",
        file_extension="pl",
        code_filename="code.pl",
        compile_command=None,
        run_command="perl -CSDA -I{workdir} {file}",
        environment=[],
        timeout_multiplier=1.0,
        memory_multiplier=1.0,
        options=[("warnings", "true")],
    )


def render(template: str, values: dict) -> list:
    """Splits a template into words like a shell, then fills placeholders in each
    word, so a substituted value is never split."""
    try:
        words = shlex.split(template)
    except ValueError as e:
        raise Err(types.PlanError_Unsupported(f"bad command template {template!r}: {e}"))
    out = []
    for word in words:
        text = word.replace("{{", "\0").replace("}}", "\1")
        for name, value in values.items():
            text = text.replace("{" + name + "}", value)
        if "{" in text or "}" in text:
            raise Err(types.PlanError_Unsupported(f"unknown placeholder in {word!r}"))
        out.append(text.replace("\0", "{").replace("\1", "}"))
    return out


class WitWorld(wit_world.WitWorld):
    def describe(self) -> types.PluginInfo:
        return types.PluginInfo(
            name="perl",
            version=VERSION,
            languages=[types.LanguageInfo(defaults=defaults(), aliases=["pl", "perl5"])],
        )

    def plan(self, config: types.LanguageConfig, request: types.PlanRequest) -> types.Plan:
        filename = config.code_filename or "code.pl"
        if "/" in filename:
            raise Err(types.PlanError_InvalidInput(f"code_filename {filename!r} must be a plain name"))
        stem = filename.rsplit(".", 1)[0]
        scratch = request.scratch_dir.rstrip("/")
        values = {
            "file": f"{scratch}/{filename}",
            "filename": filename,
            "stem": stem,
            "workdir": request.work_dir,
            "tmpdir": scratch,
            "out": f"{scratch}/{stem}",
        }
        options = dict(config.options)
        warnings = options.get("warnings", "true").lower() not in ("false", "0", "no")
        code = request.code
        run = render(config.run_command, values)
        if warnings and "-w" not in run:
            # -w rather than a `use warnings;` line, so line numbers stay the caller's.
            run.insert(1, "-w")
        env = [(k, render_value(v, values)) for k, v in config.environment]
        compile_cmds = []
        if config.compile_command:
            compile_cmds.append(types.Command(argv=render(config.compile_command, values), env=env, cwd=None))
        return types.Plan(
            files=[types.PlanFile(path=filename, location=types.FileLocation.SCRATCH,
                                  content=code.encode("utf-8"), executable=False)],
            compile=compile_cmds,
            run=types.Command(argv=run + list(request.args), env=env, cwd=None),
        )


def render_value(value: str, values: dict) -> str:
    for name, v in values.items():
        value = value.replace("{" + name + "}", v)
    return value
