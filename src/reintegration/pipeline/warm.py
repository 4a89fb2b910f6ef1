"""Warm kernels: a step's kernel forked from a process that has already
imported the libraries, instead of a new interpreter importing them again.

A step's kernel normally starts a Python interpreter, imports ipykernel and
IPython, and then the notebook imports pandas, SciPy, statsmodels (through
ACRO and linearmodels), matplotlib and this package: 2 to 4 seconds of every
step, 40 steps in a full build. Here one server process per user, interpreter
and source version imports all of that once (:data:`PRELOAD`, the modules the
notebook templates import and those they import later) and forks a kernel for
each request. The fork is a fresh process: it starts from the state right
after those imports, as a new kernel would after its first cell, with nothing
of any earlier step in it.

How a kernel is asked for: the kernel launcher of
:mod:`reintegration.pipeline.kernel` connects to the server's Unix socket in an
owner-only folder (:func:`socket_dir`), sends the kernel's command line,
working directory, environment and sandbox plan, and passes its own standard
input, output and error (the step's kernel log) with the message
(``SCM_RIGHTS``). The server forks; the child takes those descriptors, its own
session, the requested environment and working directory, enters the sandbox
(a failure is the launcher's exit 70 with its ``sandbox:`` line, as without a
server) and runs ipykernel in place of ``python -m ipykernel_launcher``; with a
sandbox, :func:`reintegration.pipeline.sandbox.enter` forks once more, the
kernel runs in the grandchild (process 1 of its own process namespace) and
the child stays as its stand-in, in the same process group. The
launcher stays as the kernel's process for the runner: it relays interrupts
and termination to the child and exits with the child's exit status, which
the server sends when it reaps the child, and ends the kernel when the
runner that started it dies. A child whose launcher disappears exits at once:
it watches the connection. The server forks only for a peer of the same
account in its own mount and user namespaces: code inside a step's sandbox
(another mount namespace) cannot have a kernel forked outside it.

The server is started by the first launcher that finds none, in its own
session; it exits after :data:`IDLE_SECONDS` without a kernel or a request.
Its socket's name is a digest of the interpreter, its ``-X`` options, the
source files of this package and the environment variables read at import
time, and the installed libraries' folders (:func:`fingerprint`): after an
edit of the code the next step gets a new server, never one holding the old
modules. Where anything of this is not
possible (no ``fork`` or Unix sockets, as on Windows; a command line other
than ipykernel's; a server that does not answer within
:data:`START_SECONDS`), :func:`launch` returns ``None`` and the launcher
starts the kernel as before. ``REINTEGRATION_WARM_KERNELS=off`` turns the
server off.

This module only uses the standard library at import: the launcher imports it.
"""

from __future__ import annotations

import errno
import hashlib
import importlib
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

MODE_ENV = "REINTEGRATION_WARM_KERNELS"
#: seconds a server waits for the next request with no kernel running
IDLE_SECONDS = 90.0
#: seconds a launcher waits for a server it started to answer
START_SECONDS = 60.0
#: what the server imports before it forks kernels
PRELOAD = (
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "IPython.display",
    "numpy",
    "pandas",
    "pyarrow.parquet",
    "pyarrow.dataset",
    "scipy.linalg",
    "scipy.optimize",
    "scipy.stats",
    "sklearn.linear_model",
    "statsmodels.api",
    "linearmodels",
    "matplotlib.pyplot",
    "myst_nb",
    "myst_nb.glue",
    "reintegration.core.config",
    "reintegration.core.step",
    "reintegration.designs",
    "reintegration.designs.rollout",
    "reintegration.disclosure",
    "reintegration.feasibility",
    "reintegration.intake.ingest",
    "reintegration.intake.profile",
    "reintegration.intake.quality",
    "reintegration.intake.quality_report",
    "reintegration.linking.linkage",
    "reintegration.phase2.advice",
    "reintegration.phase2.advice_page",
    "reintegration.phase2.advice_truth",
    "reintegration.phase2.estimates",
    "reintegration.phase2.obligations",
    "reintegration.phase2.sensitivity",
    "reintegration.phase2.validation_page",
    "reintegration.phase2.whom",
    "reintegration.phase2.whom_truth",
    "reintegration.research.cbs_files",
    "reintegration.research.describe",
    "reintegration.research.labels",
    "reintegration.research.panel",
    "reintegration.research.panel_contract",
)
#: environment variables whose values modules may read when imported
_IMPORT_ENV = ("OMP_", "OPENBLAS_", "MKL_", "NUMEXPR_", "VECLIB_", "PYTHON", "MPL", "LC_",
               "LANG", "TZ", "JUPYTER", "IPYTHON", "HOME", "XDG_", "ARROW_", "SCIPY_")
_INLINE = "module://matplotlib_inline.backend_inline"
#: the warning filters :func:`preload` added, in their order
_PRELOAD_FILTERS: list[Any] = []
_HEADER = struct.Struct("!I")
_MAX_MESSAGE = 1 << 20
#: seconds a launcher waits for the server to fork after asking
_REPLY_SECONDS = 30.0


def enabled() -> bool:
    value = os.environ.get(MODE_ENV, "auto").strip().lower() or "auto"
    if value not in ("auto", "off"):
        raise ValueError(f"{MODE_ENV}={value!r}: choose one of auto, off")
    return (
        value == "auto"
        and hasattr(os, "fork")
        and hasattr(socket, "AF_UNIX")
        and hasattr(socket, "send_fds")
        and sys.platform.startswith("linux")
    )


def kernel_args(command: list[str]) -> tuple[list[str], list[str]] | None:
    """Split ipykernel's command line ``python [-X...] -m ipykernel_launcher
    ARGS`` into (interpreter options, ARGS); None for any other command or
    another interpreter."""
    if len(command) < 3 or os.path.realpath(command[0]) != os.path.realpath(sys.executable):
        return None
    options: list[str] = []
    i = 1
    while i < len(command) and command[i].startswith("-X"):
        options.append(command[i])
        i += 1
    if command[i : i + 2] != ["-m", "ipykernel_launcher"]:
        return None
    return options, command[i + 2 :]


#: the package whose source files the fingerprint covers
PACKAGE = Path(__file__).resolve().parents[1]


def fingerprint(
    options: list[str], env: dict[str, str] | None = None, package: Path = PACKAGE
) -> str:
    """A digest of everything the server's imports depend on: interpreter,
    its options, this package's source files, the server's own preload list
    and the environment variables read at import time."""
    env = os.environ if env is None else env
    h = hashlib.sha256()
    h.update(repr((sys.executable, sys.version, options, PRELOAD)).encode())
    h.update(repr(sorted((k, v) for k, v in env.items() if k.startswith(_IMPORT_ENV))).encode())
    for entry in sys.path:  # an installed or removed library changes its folder
        if entry.endswith(("site-packages", "dist-packages")) and os.path.isdir(entry):
            h.update(f"{entry} {os.stat(entry).st_mtime_ns}".encode())
    for path in sorted(package.rglob("*.py")):
        h.update(path.relative_to(package).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:20]


def socket_dir() -> Path | None:
    """The owner-only folder of this account's servers; None when it cannot be
    made so (another owner, wider rights)."""
    return owner_only_folder("reintegration-warm")


def owner_only_folder(prefix: str) -> Path | None:
    """``<prefix>-<uid>`` in the temporary folder, made owner-only; None when
    it cannot be made so (another owner, wider rights, a link)."""
    folder = Path(tempfile.gettempdir()) / f"{prefix}-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        st = folder.lstat()
    except OSError:
        return None
    if st.st_uid != os.getuid() or st.st_mode & 0o077 or not folder.is_dir() or folder.is_symlink():
        return None
    return folder


# ---------------------------------------------------------------------------
# messages: a 4-byte length, then JSON
# ---------------------------------------------------------------------------


def _send(conn: socket.socket, obj: Any, fds: list[int] | None = None) -> None:
    data = json.dumps(obj).encode()
    payload = _HEADER.pack(len(data)) + data
    if fds:
        socket.send_fds(conn, [payload], fds)
    else:
        conn.sendall(payload)


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


def _recv(conn: socket.socket, with_fds: int = 0) -> tuple[Any, list[int]]:
    fds: list[int] = []
    if with_fds:
        head, fds, _flags, _addr = socket.recv_fds(conn, _HEADER.size, with_fds)
        try:
            if not head:
                raise ConnectionError("connection closed")
            head += _recv_exact(conn, _HEADER.size - len(head))
            (size,) = _HEADER.unpack(head)
            if size > _MAX_MESSAGE:
                raise ValueError(f"a message of {size} bytes")
            return json.loads(_recv_exact(conn, size)), fds
        except BaseException:
            for fd in fds:  # never left open in the server for a later kernel
                os.close(fd)
            raise
    else:
        head = _recv_exact(conn, _HEADER.size)
    (size,) = _HEADER.unpack(head)
    if size > _MAX_MESSAGE:
        raise ValueError(f"a message of {size} bytes")
    return json.loads(_recv_exact(conn, size)), fds


# ---------------------------------------------------------------------------
# the launcher's side
# ---------------------------------------------------------------------------


def launch(command: list[str], plan: Any) -> int | None:
    """Run the kernel ``command`` as a fork of a warm server, in ``plan``'s
    sandbox (None: no sandbox); return its exit status. None when no warm
    kernel can be had: the caller starts the kernel itself."""
    if not enabled():
        return None
    split = kernel_args(command)
    folder = socket_dir()
    if split is None or folder is None:
        return None
    options, args = split
    path = folder / f"{fingerprint(options)}.sock"
    if path.with_suffix(".refused").exists():  # this setting cannot be served
        return None
    conn = _connect(path, options)
    if conn is None:
        return None
    request = {
        "args": args,
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "hide": [str(p) for p in plan.hide] if plan is not None else None,
        "read_only": [str(p) for p in plan.read_only] if plan is not None else [],
        "keep": [str(p) for p in plan.keep] if plan is not None else [],
        "writable": [str(p) for p in plan.writable] if plan is not None else [],
    }
    try:
        conn.settimeout(_REPLY_SECONDS)
        _send(conn, request, [0, 1, 2])
        reply, _ = _recv(conn)
    except (OSError, ValueError):
        conn.close()
        return None  # nothing was forked: the caller starts the kernel itself
    return _relay(conn, int(reply["pid"]))


def _connect(path: Path, options: list[str]) -> socket.socket | None:
    """A connection to the server of ``path``, started when there is none;
    None when the server started here gave up (another server for the same
    path is waited for) or did not answer in time."""
    started = time.monotonic()
    server: subprocess.Popen | None = None
    spawned_at = -1.0
    while time.monotonic() - started < START_SECONDS:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(str(path))
            return conn
        except OSError as exc:
            conn.close()
            if exc.errno not in (errno.ENOENT, errno.ECONNREFUSED):
                return None
        status = None if server is None else server.poll()
        if status not in (None, 0):
            return None  # the server could not start: see its log
        # none yet, or ours gave way to another (starting, or just stopping:
        # then ask again, once a second)
        if (server is None or status == 0) and time.monotonic() - spawned_at >= 1.0:
            server, spawned_at = _spawn(path, options), time.monotonic()
        time.sleep(0.05)
    return None


def _spawn(path: Path, options: list[str]) -> subprocess.Popen:
    """Start a server for ``path`` in its own session (it outlives this
    launcher); a second server for the same path gives way to the first."""
    log = path.with_suffix(".log")
    with open(log, "ab") as err:
        os.chmod(log, 0o600)
        return subprocess.Popen(
            [sys.executable, *options, "-m", "reintegration.pipeline.warm", str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=str(path.parent),
            start_new_session=True,
        )


def _relay(conn: socket.socket, pid: int) -> int:
    """Forward interrupts and termination to the kernel ``pid`` (its process
    group, as the runner signals this launcher's); end the kernel when the
    runner that started this launcher dies; return the kernel's exit status
    when the server reports it."""

    def forward(signum: int, _frame: Any) -> None:
        try:
            os.killpg(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, forward)
    parent = os.getppid()

    def orphaned() -> None:  # what ipykernel's parent poller did for a new kernel
        while os.getppid() == parent:
            time.sleep(0.5)
        forward(signal.SIGKILL, None)
        os._exit(1)

    threading.Thread(target=orphaned, name="warm-kernel-runner-watch", daemon=True).start()
    conn.settimeout(None)
    try:
        reply, _ = _recv(conn)
        status = int(reply["status"])
    except (OSError, ValueError, KeyError):
        return 1
    finally:
        conn.close()
    if status < 0:  # killed by a signal: end the same way
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    return status


# ---------------------------------------------------------------------------
# the server's side
# ---------------------------------------------------------------------------


def preload() -> None:
    """Import :data:`PRELOAD` as a kernel would: matplotlib with the backend
    ipykernel chooses (only the name; the backend module itself is left to the
    kernel), ACRO through the container that undoes its side effects."""
    global _PRELOAD_FILTERS
    os.environ.setdefault("MPLBACKEND", _INLINE)
    importlib.import_module("ipykernel.kernelapp")  # what every kernel imports first
    importlib.import_module("ipykernel.ipkernel")
    base = len(warnings.filters)
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
    try:
        from ..disclosure.acro import acro_module

        acro_module()
    except ImportError:
        pass
    # imports insert their warning filters in front: these came after the kernel's
    _PRELOAD_FILTERS = list(warnings.filters[: len(warnings.filters) - base])


#: threads a fork may copy: jemalloc's purging thread (pyarrow's allocator;
#: jemalloc takes its locks around a fork, and the child starts without it)
_FORK_SAFE_THREADS = ("jemalloc_bg_thd",)


def _other_threads() -> list[str]:
    """The names of this process's threads besides the main one that a fork
    could leave holding a lock in the child."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    names = []
    for task in tasks:
        if int(task) == os.getpid():
            continue
        try:
            name = Path(f"/proc/self/task/{task}/comm").read_text().strip()
        except OSError:
            name = "?"
        if name not in _FORK_SAFE_THREADS:
            names.append(name)
    return names


def serve(path: Path, idle: float = IDLE_SECONDS) -> int:
    """Serve kernels on ``path`` until idle; 0 when another server has it."""
    import fcntl

    lock = open(path.with_suffix(".lock"), "a+b")  # noqa: SIM115 (held for life)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0
    if sys.path and Path(sys.path[0] or ".").resolve() == Path.cwd().resolve():
        del sys.path[0]  # as ipykernel_launcher does before its imports
    preload()
    others = _other_threads()
    if others:  # a fork would copy locks held by these threads
        print(f"warm kernels: threads {others} after the imports; not serving", file=sys.stderr)
        path.with_suffix(".refused").write_text(f"threads {others}\n", encoding="utf-8")
        return 1
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(16)
    try:
        _loop(listener, idle, lock)
    finally:
        path.unlink(missing_ok=True)
        listener.close()
        # nothing left of an idle server but its lock file and a log that says
        # something (the lock stays: a server that opened it must lock this file)
        log = path.with_suffix(".log")
        if log.exists() and log.stat().st_size == 0:
            log.unlink()
    return 0


def _loop(listener: socket.socket, idle: float, lock: Any) -> None:
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)
    children: dict[int, socket.socket] = {}
    last = time.monotonic()
    while children or time.monotonic() - last < idle:
        for key, _ in sel.select(timeout=5.0):
            if key.fileobj is listener:
                conn, _ = listener.accept()
                pid = None
                if _same_world(conn):
                    inherited = (listener, wake_r, wake_w, [*children.values()], sel, lock)
                    pid = _fork_kernel(conn, *inherited)
                else:
                    conn.close()
                if pid is not None:
                    children[pid] = conn
                last = time.monotonic()
            else:
                os.read(wake_r, 512)
        _reap(children)
        if children:
            last = time.monotonic()


def _reap(children: dict[int, socket.socket]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is not None:
            try:
                _send(conn, {"status": os.waitstatus_to_exitcode(status)})
            except OSError:
                pass
            conn.close()


def _same_world(conn: socket.socket) -> bool:
    """Whether the peer of ``conn`` is this account in this server's mount and
    user namespaces: a process inside a step's sandbox (another mount
    namespace) is refused, so it cannot have a kernel forked outside it."""
    try:
        pid, uid, _gid = struct.unpack("3i", conn.getsockopt(
            socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
        if uid != os.getuid():
            return False
        for ns in ("mnt", "user"):
            mine, theirs = os.stat(f"/proc/self/ns/{ns}"), os.stat(f"/proc/{pid}/ns/{ns}")
            if (mine.st_dev, mine.st_ino) != (theirs.st_dev, theirs.st_ino):
                return False
    except OSError:
        return False
    return True


def _fork_kernel(conn: socket.socket, *inherited: Any) -> int | None:
    try:
        conn.settimeout(10.0)  # a client that stalls mid-request is dropped
        request, fds = _recv(conn, with_fds=3)
        conn.settimeout(None)
    except (OSError, ValueError):
        conn.close()
        return None
    if len(fds) != 3:
        for fd in fds:
            os.close(fd)
        conn.close()
        return None
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the kernel
        code = 1
        try:
            code = _become_kernel(request, fds, conn, inherited)
        except BaseException:  # noqa: BLE001 (reported in the kernel's log)
            import traceback

            traceback.print_exc()
            sys.stderr.flush()
        finally:
            os._exit(code)
    for fd in fds:
        os.close(fd)
    try:
        _send(conn, {"pid": pid})
    except OSError:
        pass
    return pid


def _become_kernel(
    request: dict[str, Any], fds: list[int], conn: socket.socket, inherited: tuple[Any, ...]
) -> int:
    """In the forked child: take the launcher's descriptors, environment,
    working directory and sandbox, then run ipykernel as ``python -m
    ipykernel_launcher`` would; return the exit status."""
    listener, wake_r, wake_w, others, sel, lock = inherited
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    sel.close()
    listener.close()
    lock.close()  # the server's lock stays the server's
    for other in others:  # the connections of the kernels running beside this one
        other.close()
    os.close(wake_r)
    os.close(wake_w)
    os.setsid()
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    os.chdir(request["cwd"])
    if request["hide"] is not None:
        from .sandbox import Plan, SandboxError, enter, sandbox_line

        plan = Plan(tuple(map(Path, request["hide"])), tuple(map(Path, request["read_only"])),
                    tuple(map(Path, request.get("keep", []))),
                    tuple(map(Path, request.get("writable", []))))
        try:
            enter(plan)
        except SandboxError as exc:
            print(sandbox_line(exc), file=sys.stderr, flush=True)
            return 70
    _watch(conn)
    return _run_ipykernel(request["args"])


def _watch(conn: socket.socket) -> None:
    """End this kernel at once when its launcher goes away (the launcher's end
    of the connection closes only when it exits)."""

    def wait() -> None:
        try:
            while conn.recv(64):
                pass
        except OSError:
            pass
        os._exit(1)

    threading.Thread(target=wait, name="warm-kernel-launcher-watch", daemon=True).start()


def _run_ipykernel(args: list[str]) -> int:
    """What ``python -m ipykernel_launcher ARGS`` does, then what the
    interpreter does at exit (threads joined, exit handlers, streams flushed)."""
    import atexit

    import ipykernel_launcher  # noqa: PLC0415 (only its file name is used)
    from ipykernel import kernelapp

    sys.argv = [ipykernel_launcher.__file__, *args]
    code = 0
    try:
        app = kernelapp.IPKernelApp.instance()
        app.initialize()
        _filters_as_if_imported_now()
        app.start()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        shutdown = getattr(threading, "_shutdown", None)
        if shutdown is not None:
            shutdown()
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
    return code


def _filters_as_if_imported_now() -> None:
    """Put the warning filters the preloaded modules added in front of those
    the kernel's start added, where a new kernel would have them once its
    notebook imports the same modules."""
    mine = {id(f) for f in _PRELOAD_FILTERS}
    rest = [f for f in warnings.filters if id(f) not in mine]
    warnings.filters[:] = [*_PRELOAD_FILTERS, *rest]
    warnings._filters_mutated()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m reintegration.pipeline.warm <socket path>", file=sys.stderr)
        return 2
    return serve(Path(args[0]))


if __name__ == "__main__":
    sys.exit(main())
