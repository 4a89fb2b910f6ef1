"""How the runner starts a step's kernel: its identity, its sandbox, its log.

papermill hands ``kernel_manager_class`` to nbclient; :func:`manager_class`
builds one per step run. Its kernel

1. gets the step, city and size the runner executes in its environment, where
   :func:`reintegration.core.step.start` reads them (a notebook cannot name another
   step to take its role);
2. writes its own stdout and stderr to a log inside the step's own
   person-level domain folder (``build/<size>/<city>/<domain>/logs/``,
   owner-only), never the release domain: ipykernel's start-up and shut-down
   messages stay out of the terminal, while cell errors still reach the runner
   through the kernel protocol;
3. on Linux, starts through this module's launcher, which enters the sandbox of
   :mod:`reintegration.pipeline.sandbox` (whose last act is a fork: the
   launcher stays as the kernel's stand-in, its child becomes the kernel)::

       python -m reintegration.pipeline.kernel [--hide <folder>]... [--read-only <folder>]...
           -- <the kernelspec's command>

The kernel talks to the runner over Unix sockets (ZeroMQ ``ipc`` transport) in
an owner-only temporary folder on Linux and macOS, not over TCP on localhost.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..core.custody import FAILED_DOMAIN
from .sandbox import PERSON_DOMAINS, Plan

LOG_DIR = "logs"


def log_domain(role: str) -> str:
    """The person-level domain whose folder holds the step's kernel log: the
    same owner-only domain as the step's failed runs (the data the role works
    on; the validator's is the truth), never the release domain."""
    return FAILED_DOMAIN.get(role, "research")


def log_path(paths: Any, city: str, step: str, role: str) -> Path:
    folder = paths.city_build_domain(city, log_domain(role)) / LOG_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for d in (folder.parent, folder):
        os.chmod(d, 0o700)
    return folder / f"{step}.kernel.log"


def custody_folders(paths: Any, cities: list[str]) -> list[tuple[Path, str, bool]]:
    """Every folder of a person-level domain, as (path, domain, is_input): the
    data inputs (synthetic, and any ``data_roots`` of a city's configuration)
    and each city's build folders, created owner-only when missing so that
    nothing can appear in them unhidden while a kernel runs."""
    from ..core.config import load_city
    from ..core.paths import SIZES, Paths

    folders: list[tuple[Path, str, bool]] = []
    for domain in PERSON_DOMAINS:
        folders.append((paths.data_dir / domain, domain, True))
    for city in cities:
        roots = load_city(city, paths.root).get("data_roots") or {}
        folders += [(Path(r), d, True) for r, d in roots.items() if d in PERSON_DOMAINS]
        for domain in PERSON_DOMAINS:
            folder = paths.city_build_domain(city, domain)
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            folders.append((folder, domain, False))
    # the data and build folders of the other sizes, as far as they exist (a
    # step of one size must not read the person-level files of another)
    for size in SIZES:
        if size == paths.size:
            continue
        other = Paths.for_size(size, paths.root)
        for domain in PERSON_DOMAINS:
            folders.append((other.data_dir / domain, domain, True))
        if other.build_dir.is_dir():
            for city_dir in sorted(p for p in other.build_dir.iterdir() if p.is_dir()):
                folders += [(city_dir / d, d, True) for d in PERSON_DOMAINS]
    return folders


KERNELS_FOLDER = "reintegration-kernels"


def kernels_dir() -> Path | None:
    """The owner-only folder that holds every kernel's own folder (its
    connection file and sockets) on this machine for this account; None when
    it cannot be made so (another owner, wider rights)."""
    from .warm import owner_only_folder

    return owner_only_folder(KERNELS_FOLDER)


def _private_folders(
    launch: list[str], sockets: Path | None, root: Path | None, city: str = "", size: str = ""
) -> list[str]:
    """What a sandboxed launch adds to its plan so that the kernel cannot
    reach any other kernel or server of the account: the folder of every
    kernel's connection file and sockets is hidden but for its own, and so
    are Jupyter's runtime folder (where kernels started elsewhere, JupyterLab's
    say, keep their connection files), the warm kernels' servers and the
    account's command servers; the code folders (:func:`code_folders`) and the
    home folder are read-only but for the cache; of the repository's build
    folder only the step's own city's stays writable (other files there, such
    as the make rules make reads, are run outside any sandbox)."""
    if not launch or "--no-sandbox" in launch or sockets is None:
        return []
    from jupyter_core.paths import jupyter_runtime_dir

    from . import warm

    out = ["--hide", str(sockets.parent.resolve()), "--keep", str(sockets.resolve())]
    uid = os.getuid()
    servers = (
        Path(jupyter_runtime_dir()),
        warm.socket_dir(),
        # the account's own command servers: its systemd and D-Bus session
        # (systemd-run --user runs a command outside the sandbox), tmux
        Path(f"/run/user/{uid}"),
        Path(tempfile.gettempdir()) / f"tmux-{uid}",
    )
    for folder in servers:
        if folder is not None and folder.is_dir() and not folder.is_symlink():
            out += ["--hide", str(folder.resolve())]
    for folder in code_folders(root):
        out += ["--read-only", str(folder)]
    if root is not None and city and size:  # a step writes its city's build folder only
        from ..core.paths import Paths

        build = Paths.for_size(size, root).city_build(city)
        if build.is_dir():
            out += ["--writable", str(build.resolve())]
    # the home is read-only but for the caches and Matplotlib's own folder
    # (it warns in every notebook when it cannot write there; a matplotlibrc
    # can only name modules on the read-only import path)
    home = Path.home()
    config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    writable = [home / ".cache", Path(os.environ.get("MPLCONFIGDIR") or config / "matplotlib")]
    try:
        for folder in writable:
            folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return out
    out += ["--read-only", str(home.resolve())]
    for folder in writable:
        out += ["--writable", str(folder.resolve())]
    return out


def code_folders(root: Path | None) -> list[Path]:
    """Folders whose files a kernel runs or reads as code or settings when it
    starts or imports, read-only in every sandbox: otherwise code in one step
    could change what the kernel of a later step, with another role, runs
    (a module of this package or of an installed library, a notebook
    template, a configuration file, an IPython start-up script, a ``.pth``
    file) and have it read for it. The repository (its build folder stays
    writable: :func:`_private_folders`), the folder this package is imported from, the
    interpreter's environment and installation, every folder Jupyter reads
    kernelspecs and settings from, IPython's folder and, outside a virtual environment,
    the user's site-packages (made first where missing, so that none can
    appear writable later); ``root`` is the repository (None: none of its
    folders). IPython keeps its history of a kernel's cells in memory when its
    folder is read-only."""
    import site

    from jupyter_core.paths import jupyter_config_dir, jupyter_config_path, jupyter_path

    try:
        from IPython.paths import get_ipython_dir

        ipython = Path(get_ipython_dir())
    except ImportError:  # pragma: no cover (ipykernel needs IPython)
        ipython = None
    made = [ipython, Path(jupyter_config_dir())]
    if site.ENABLE_USER_SITE:  # not in a virtual environment
        made.append(Path(site.getusersitepackages()))
    for folder in made:
        if folder is not None:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError:  # a home that cannot be written: nothing can appear there either
                pass
    # the whole repository: its src, notebooks and config, and any file a
    # later process started in it could import (Python puts the working
    # folder first on its path for `python -m`) or git could run (hooks)
    repo = [root] if root is not None else []
    package = Path(__file__).resolve().parents[2]  # where this package is imported from
    # every folder Jupyter finds kernelspecs and settings in (a kernelspec's
    # environment applies to the launcher itself, before any sandbox)
    jupyter = [Path(p) for p in (*jupyter_path(), *jupyter_config_path())]
    wanted = [*repo, package, Path(sys.prefix), Path(sys.base_prefix), *made, *jupyter]
    out: list[Path] = []
    for folder in wanted:
        if folder is None or not folder.is_dir():
            continue
        real = Path(os.path.realpath(folder))
        if real not in out and not any(o in real.parents for o in out):
            out.append(real)
    return out


def manager_class(
    launch: list[str],
    *,
    env: dict[str, str],
    log: Path,
    ipc: bool = sys.platform != "win32",
) -> tuple[type, Path | None]:
    """An AsyncKernelManager subclass whose kernel command starts with
    ``launch`` (empty: no launcher), with ``env`` added to its environment and
    its output in ``log``; and the temporary socket folder to remove after the
    run (None for TCP).

    The kernel's connection file (which holds the key that signs its
    messages) and its sockets are in that folder of its own, inside
    :func:`kernels_dir`; a sandboxed kernel sees its own folder only
    (:func:`_private_folders`), so code in one step cannot read another
    kernel's key and have that kernel, with another role, run code for it."""
    from jupyter_client.manager import AsyncKernelManager

    parent = kernels_dir() if ipc else None
    if ipc and parent is None:
        raise kernel_folder_error()
    sockets = Path(tempfile.mkdtemp(prefix="run-", dir=parent)) if parent is not None else None
    root = env.get("REINTEGRATION_ROOT")
    prefix = [*launch, *_private_folders(
        launch, sockets, Path(root) if root else None,
        env.get("REINTEGRATION_CITY", ""), env.get("REINTEGRATION_SIZE", ""),
    )]
    extra = dict(env)

    class StepKernelManager(AsyncKernelManager):
        def __init__(self, **kw: Any) -> None:
            if sockets is not None:
                kw.setdefault("transport", "ipc")
                kw.setdefault("ip", str(sockets / "k"))
                kw.setdefault("connection_file", str(sockets / "kernel.json"))
            super().__init__(**kw)

        def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
            cmd = super().format_kernel_cmd(extra_arguments)
            return [*prefix, "--", *cmd] if prefix else cmd

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            kw["env"] = {**(kw.get("env") or os.environ), **extra}
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                kw["stdout"] = kw["stderr"] = fd
                await super()._async_launch_kernel(kernel_cmd, **kw)
            finally:
                os.close(fd)  # the kernel has its own copy

    return StepKernelManager, sockets


def kernel_folder_error() -> OSError:
    folder = Path(tempfile.gettempdir()) / f"{KERNELS_FOLDER}-{os.getuid()}"
    return OSError(
        f"the kernels' folder {folder} cannot be made owner-only (another owner, or wider "
        "rights): remove it, or point TMPDIR at a folder of your own"
    )


def launch_command(plan: Plan | None) -> list[str]:
    """The launcher prefix for ``plan``; without a sandbox, none, or the
    launcher with ``--no-sandbox`` where it can fork a warm kernel
    (:mod:`reintegration.pipeline.warm`)."""
    from . import warm

    if plan is None:
        if not warm.enabled():
            return []
        return [sys.executable, "-m", "reintegration.pipeline.kernel", "--no-sandbox"]
    return [sys.executable, "-m", "reintegration.pipeline.kernel", *plan.args()]


def remove_sockets(folder: Path | None) -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


NOTICE = ".sandbox-unavailable"


def prepare(paths: Any, step: str, city: str, size: str, role: str) -> dict[str, Any]:
    """Everything the runner needs to start the kernel of one step run: the
    manager class for papermill, its socket folder, the log, and which
    guarantee holds (``sandbox``: ``os`` or ``code``, with the reason)."""
    from ..core.config import list_cities
    from . import sandbox

    wanted = sandbox.mode()
    plan = None
    how = "code"
    reason = f"{sandbox.MODE_ENV}=off"
    if wanted != "off":
        ok, reason = sandbox.available()
        if ok:
            plan = sandbox.plan_for(role, custody_folders(paths, list_cities(paths.root)))
            how = "os"
        elif wanted == "required":
            raise sandbox.SandboxError(
                f"{sandbox.MODE_ENV}=required but no sandbox is available here: {reason}"
            )
        else:
            _say_once(paths, reason)
    log = log_path(paths, city, step, role)
    env = {
        "REINTEGRATION_ROOT": str(paths.root),
        "REINTEGRATION_STEP": step,
        "REINTEGRATION_CITY": city,
        "REINTEGRATION_SIZE": size,
    }
    cls, sockets = manager_class(launch_command(plan), env=env, log=log)
    return {
        "manager": cls,
        "sockets": sockets,
        "log": log,
        "custody": {"enforced_by": how, "detail": reason, "plan": plan},
    }


def _say_once(paths: Any, reason: str) -> None:
    """Print, once per build folder, that only the checks in code hold."""
    marker = paths.build_dir / NOTICE
    if marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(reason + "\n", encoding="utf-8")
    print(
        f"warning: no operating-system sandbox for the steps ({reason}); custody is "
        "enforced only by the checks in the step context. See the book's ethics appendix.",
        file=sys.stderr,
    )


def failure(step: str, city: str, log: Path, exc: BaseException) -> str:
    """The runner's message when the kernel died or never started. Only the
    launcher's own lines (``sandbox: ...``) are quoted from the log: the rest of
    the kernel's output may show data, so the message names the log instead."""
    own = []
    if log.exists():
        text = log.read_text(encoding="utf-8", errors="replace")
        own = [ln for ln in text.splitlines() if ln.startswith(("sandbox:", "kernel launcher:"))]
    detail = "; ".join(own) or f"{type(exc).__name__}: {exc}"
    return f"step {step} for {city} did not run to its end ({detail}); the kernel's log is {log}"


def custody_record(custody: dict[str, Any], root: Path) -> dict[str, Any]:
    """What the provenance record says about the guarantee of one step run."""

    def rel(paths: tuple[Path, ...]) -> list[str]:
        out = []
        for p in paths:
            try:
                out.append(str(p.relative_to(root)))
            except ValueError:
                out.append(str(p))
        return sorted(out)

    plan = custody["plan"]
    return {
        "enforced_by": custody["enforced_by"],
        "detail": custody["detail"],
        "hidden": rel(plan.hide) if plan else [],
        "read_only": rel(plan.read_only) if plan else [],
    }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m reintegration.pipeline.kernel")
    p.add_argument("--hide", action="append", type=Path, default=[])
    p.add_argument("--read-only", action="append", type=Path, default=[])
    p.add_argument("--keep", action="append", type=Path, default=[])
    p.add_argument("--writable", action="append", type=Path, default=[])
    p.add_argument("--no-sandbox", action="store_true")
    p.add_argument("command", nargs=argparse.REMAINDER)
    return p


def main(argv: list[str] | None = None) -> int:
    """Enter the sandbox, then become the kernel; or have a warm server fork
    the kernel into the sandbox and stay as its process for the runner. A
    sandbox that cannot be set up stops here (exit 70): the kernel never runs
    without it."""
    args = _parser().parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        print("kernel launcher: no kernel command after --", file=sys.stderr)
        return 2
    from . import warm
    from .sandbox import SandboxError, enter, sandbox_line

    if args.no_sandbox and (args.hide or args.read_only or args.keep or args.writable):
        print("kernel launcher: --no-sandbox with folders to hide or protect", file=sys.stderr)
        return 2
    plan = None if args.no_sandbox else Plan(tuple(args.hide), tuple(args.read_only),
                                             tuple(args.keep), tuple(args.writable))
    status = warm.launch(command, plan)
    if status is not None:
        return status
    try:
        if plan is not None:
            enter(plan)
    except SandboxError as exc:
        print(sandbox_line(exc), file=sys.stderr, flush=True)
        return 70
    os.execvp(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
