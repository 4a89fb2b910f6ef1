"""Custody enforced by the operating system: what a step's kernel can see.

:mod:`reintegration.core.custody` checks every file a step opens *through its
context*. Code that bypasses the context (``pd.read_csv`` on a path it made up,
``open()``, a symlink) is not stopped by it. On Linux the runner therefore
starts each step's kernel in its own mount namespace (``unshare(2)`` with
``CLONE_NEWNS``) in which

- every folder of a custody domain the step's role may not read is covered by
  an empty, read-only ``tmpfs``: the files are not there for the kernel, whatever
  code asks for them;
- every input folder (synthetic or real exports, CBS files) and every build
  folder of a domain the role may read but not write is bind-mounted read-only;
- the kernel is the first process of a process namespace of its own
  (``CLONE_NEWPID``) with a ``/proc`` of that namespace mounted over the old
  one, so no other process is there to look through. Without it, code in the
  kernel could read a hidden folder through ``/proc/<pid>/root/`` of any
  process of the same account outside the sandbox (the runner, for one): that
  path shows the other process's mounts.

- the kernel has a network namespace of its own with no interface up: it
  talks to the runner through Unix sockets in its own folder, and can reach
  no port of another process (a kernel outside the runner, on TCP) or machine;
- folders to keep (:attr:`Plan.keep`) stay visible inside a hidden one: the
  runner hides the folder of every kernel's connection file and sockets but
  the kernel's own (:func:`reintegration.pipeline.kernel.manager_class`), so
  no kernel can read another's key and have it run code.

Only the next child of a process enters its new process namespace, so
:func:`enter` forks: the child becomes the kernel, the parent stays outside as
the process the runner started and lives exactly as long as the kernel (see
:func:`_stand_in`).

Mounting needs ``CAP_SYS_ADMIN``: as root the namespace is created directly;
an ordinary account gets it inside a new user namespace that maps the account
onto itself, where the kernel allows unprivileged user namespaces (most Linux
distributions do). Where neither works (Windows, macOS, a locked-down kernel
or container) :func:`available` says why, the runner says so once, and only the
checks in code hold. ``REINTEGRATION_SANDBOX`` chooses:
``auto`` (default: use it when available), ``required`` (fail the step when it
is not) or ``off``.

This module only uses the standard library: the kernel launcher imports it
before the kernel starts.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

MODE_ENV = "REINTEGRATION_SANDBOX"
MODES = ("auto", "required", "off")
PERSON_DOMAINS = ("municipal", "ttp", "research", "truth")

_CLONE_NEWNS, _CLONE_NEWUSER, _CLONE_NEWPID = 0x00020000, 0x10000000, 0x20000000
_CLONE_NEWNET = 0x40000000
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS = 1, 38
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_NOATIME, _MS_NODIRATIME = 1024, 2048
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18


class SandboxError(OSError):
    """The mount namespace or one of its mounts could not be set up."""


@dataclass(frozen=True)
class Plan:
    """Folders to hide (empty read-only tmpfs) and to make read-only, and
    folders inside hidden ones to keep (the kernel's own connection folder
    inside the folder of every kernel's)."""

    hide: tuple[Path, ...] = ()
    read_only: tuple[Path, ...] = ()
    keep: tuple[Path, ...] = ()
    #: folders inside read-only ones that stay writable (the build folder
    #: inside the read-only repository); what is read-only or hidden inside
    #: them stays so
    writable: tuple[Path, ...] = ()

    def args(self) -> list[str]:
        out: list[str] = []
        for d in self.hide:
            out += ["--hide", str(d)]
        for d in self.read_only:
            out += ["--read-only", str(d)]
        for d in self.keep:
            out += ["--keep", str(d)]
        for d in self.writable:
            out += ["--writable", str(d)]
        return out


def mode() -> str:
    value = os.environ.get(MODE_ENV, "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(f"{MODE_ENV}={value!r}: choose one of {', '.join(MODES)}")
    return value


def plan_for(role: str, folders: list[tuple[Path, str, bool]]) -> Plan:
    """The plan for ``role`` over ``folders``: (path, domain, is_input) triples.

    A folder of a domain the role may not read is hidden (a build folder only
    when the role may not write it either: the linking unit writes research
    files it may not read back); an input folder the role may read, or a build
    folder of a domain it may read but not write, becomes read-only. Folders
    that do not exist are skipped (create build folders first, so nothing can
    appear in them later); a folder inside one already hidden needs no mount of
    its own."""
    from ..core.custody import ROLE_ACCESS

    readable, writable = ROLE_ACCESS[role]
    hide: list[Path] = []
    read_only: list[Path] = []
    for path, domain, is_input in sorted(folders, key=lambda f: len(Path(f[0]).parts)):
        real = Path(os.path.realpath(path))
        if not real.is_dir() or any(h == real or h in real.parents for h in hide):
            continue
        if domain not in readable and (is_input or domain not in writable):
            hide.append(real)
        elif is_input or domain not in writable:
            read_only.append(real)
    hidden = set(hide)
    read_only = [r for r in dict.fromkeys(read_only) if r not in hidden]
    return Plan(tuple(dict.fromkeys(hide)), tuple(read_only))


def _libc() -> ctypes.CDLL:
    if not sys.platform.startswith("linux"):
        raise SandboxError(f"mount namespaces exist only on Linux, not on {sys.platform}")
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def sandbox_line(exc: SandboxError) -> str:
    """The one line a launcher writes to the kernel's log when the sandbox
    cannot be set up (the runner quotes lines that start with ``sandbox:``)."""
    text = str(exc.strerror or exc)
    return text if text.startswith("sandbox:") else f"sandbox: {text}"


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise SandboxError(err, f"sandbox: {what}: {os.strerror(err)}")


def _unshare(libc: ctypes.CDLL) -> None:
    """New mount and network namespaces: directly as root (``CAP_SYS_ADMIN``),
    otherwise inside a new user namespace that maps the account onto itself,
    where the kernel allows unprivileged user namespaces. The new network
    namespace has no interface up, not even loopback: the kernel reaches the
    runner through its own folder's Unix sockets only, and no port of any
    other process (another kernel on TCP, JupyterLab's say) or of any other
    machine."""
    if libc.unshare(_CLONE_NEWNS | _CLONE_NEWNET) == 0:
        return
    first = ctypes.get_errno()
    if os.geteuid() == 0:
        raise SandboxError(
            first, f"sandbox: unshare(CLONE_NEWNS | CLONE_NEWNET): {os.strerror(first)}"
        )
    uid, gid = os.geteuid(), os.getegid()
    _check(libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS | _CLONE_NEWNET),
           "unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET)")
    for name, text in (
        ("setgroups", "deny"),
        ("uid_map", f"{uid} {uid} 1"),
        ("gid_map", f"{gid} {gid} 1"),
    ):
        with open(f"/proc/self/{name}", "w", encoding="ascii") as fh:
            fh.write(text)


def _locked_flags(path: Path) -> int:
    """The flags of the mount ``path`` is on that a read-only remount must keep
    (in a user namespace they are locked). ST_* and MS_* share these values."""
    keep = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC | _MS_NOATIME | _MS_NODIRATIME
    return os.statvfs(path).f_flag & keep


def enter(plan: Plan) -> None:
    """Move this process into a new mount namespace, apply ``plan``, and go on
    as the first process of a new process namespace with its own ``/proc``.

    Returns in that new process only; the calling process stays outside as
    its stand-in and never returns (:func:`_stand_in`). Mounts are private to
    the namespace: nothing changes for any other process, and the mounts
    disappear with the kernel. Must be called with one thread only (it forks)."""
    libc = _libc()
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
    parent = os.getppid()  # the process that started this one, before anything can go wrong
    _unshare(libc)
    _check(libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "make / private")
    for d in plan.read_only:
        b = os.fsencode(d)
        _check(libc.mount(b, b, None, _MS_BIND | _MS_REC, None), f"bind {d}")
        flags = _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _locked_flags(d)
        _check(libc.mount(None, b, None, flags, None), f"make {d} read-only")
    for d in plan.writable:  # bound again, with the read-only folders inside it
        b = os.fsencode(d)
        _check(libc.mount(b, b, None, _MS_BIND | _MS_REC, None), f"bind {d}")
        flags = _MS_REMOUNT | _MS_BIND | _locked_flags(d)
        _check(libc.mount(None, b, None, flags, None), f"make {d} writable")
    # each folder to keep, held open before anything covers it
    kept: dict[Path, int] = {}
    try:
        for k in plan.keep:
            try:
                kept[Path(os.path.realpath(k))] = os.open(k, os.O_PATH | os.O_DIRECTORY)
            except OSError as exc:
                raise SandboxError(exc.errno, f"sandbox: keep {k}: {exc.strerror}") from None
        for d in plan.hide:
            real = Path(os.path.realpath(d))  # a folder named through a link is covered too
            _hide(libc, real, [k for k in kept if real in k.parents], kept)
    finally:
        for fd in kept.values():
            os.close(fd)
    _own_processes(libc, parent)


def _hide(libc: ctypes.CDLL, folder: Path, inside: list[Path], fds: dict[Path, int]) -> None:
    """Cover ``folder`` with an empty read-only tmpfs; with folders ``inside``
    it to keep, the tmpfs holds only their paths, each with the original
    folder bind-mounted on it (from a descriptor opened before the cover)."""
    flags = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
    b = os.fsencode(folder)
    if not inside:
        _check(libc.mount(b"tmpfs", b, b"tmpfs", flags | _MS_RDONLY, b"size=4k,mode=0500"),
               f"hide {folder}")
        return
    _check(libc.mount(b"tmpfs", b, b"tmpfs", flags, b"size=16k,mode=0700"), f"hide {folder}")
    for k in inside:
        try:
            os.makedirs(k, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise SandboxError(exc.errno, f"sandbox: keep {k}: {exc.strerror}") from None
        source = os.fsencode(f"/proc/self/fd/{fds[k]}")
        _check(libc.mount(source, os.fsencode(k), None, _MS_BIND, None), f"keep {k}")
    _check(libc.mount(None, b, None, _MS_REMOUNT | _MS_RDONLY | flags, None),
           f"make the cover of {folder} read-only")


def _own_processes(libc: ctypes.CDLL, parent: int) -> None:
    """Fork into a new process namespace; in the child (its process 1), mount
    that namespace's ``/proc`` and return; in the parent, stand in for the
    child until it ends (:func:`_stand_in`, never returns).

    The child keeps the parent's process group, so a signal to the group (how
    the runner and the warm launcher signal a kernel) reaches both. It is
    killed when the parent dies (``PR_SET_PDEATHSIG``); a pipe covers the
    moment before that is set."""
    _check(libc.unshare(_CLONE_NEWPID), "unshare(CLONE_NEWPID)")
    alive_r, alive_w = os.pipe()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    pid = os.fork()
    if pid:
        os.close(alive_r)
        _stand_in(pid, parent)  # never returns
    os.close(alive_w)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                           ctypes.c_ulong]
    _check(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    os.set_blocking(alive_r, False)
    try:
        gone = os.read(alive_r, 1) == b""  # the write end closed: the parent died
    except BlockingIOError:
        gone = False
    os.close(alive_r)
    if gone:
        os._exit(1)
    flags = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
    try:
        _check(libc.mount(b"proc", b"/proc", b"proc", flags, None),
               "mount /proc of the kernel's own processes")
        _lock(libc)
    except SandboxError as exc:
        print(sandbox_line(exc), file=sys.stderr, flush=True)
        os._exit(70)


def _lock(libc: ctypes.CDLL) -> None:
    """Make the mounts above permanent for the kernel, and take away every
    privilege it could regain.

    The kernel would otherwise keep the capability that made the mounts (as
    root, or inside the user namespace an ordinary account gets) and could
    simply unmount a cover or remount a read-only folder writable. A new user
    namespace (the account mapped onto itself) with a new mount namespace
    locks every mount it inherits: they cannot be unmounted, moved or made
    writable from inside. ``PR_SET_NO_NEW_PRIVS`` keeps any program the kernel
    starts from gaining privileges (set-user-id files)."""
    uid, gid = os.geteuid(), os.getegid()
    _check(libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS), "lock the mounts (unshare)")
    for name, text in (
        ("setgroups", "deny"),
        ("uid_map", f"{uid} {uid} 1"),
        ("gid_map", f"{gid} {gid} 1"),
    ):
        try:
            with open(f"/proc/self/{name}", "w", encoding="ascii") as fh:
                fh.write(text)
        except OSError as exc:
            raise SandboxError(
                exc.errno, f"sandbox: lock the mounts ({name}): {exc.strerror}"
            ) from None
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")


#: signals the stand-in passes on as SIGKILL: the first process of a process
#: namespace ignores every signal it has no handler for, and the kernel has
#: none for these (their default action, ending the process, is what is meant)
_ENDING = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def _stand_in(pid: int, parent: int) -> None:
    """The process the runner (or the warm launcher) started, outside the
    sandbox, while the kernel ``pid`` runs inside: it ends as the kernel ended
    (its exit status or signal). An interrupt sent to the process group reaches
    the kernel directly (ipykernel handles SIGINT), so it is ignored here; a
    terminating signal ends the kernel with SIGKILL and then this process by
    the signal it received."""
    received: list[int] = []

    def end(signum: int, _frame: object) -> None:
        received.append(signum)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in _ENDING:
        signal.signal(sig, end)
    # Wait for the kernel, and watch the process that started this one (the
    # runner, or the warm server): ipykernel's own watch of its parent cannot
    # see it go from inside the process namespace, so this ends the kernel
    # when it goes. No thread: this process cannot start one once it has
    # unshared its children's process namespace. A blocked SIGCHLD stays
    # pending, so the wait below wakes the moment the kernel ends.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    orphaned = False
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if not orphaned and os.getppid() != parent:  # the runner was killed
            orphaned = True
            received.append(signal.SIGKILL)
            os.kill(pid, signal.SIGKILL)
        signal.sigtimedwait({signal.SIGCHLD}, 0.5)
    code = os.waitstatus_to_exitcode(status)
    sig = received[0] if received else (-code if code < 0 else 0)
    if sig:
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        code = 128 + sig  # a signal whose default is to go on: end as a shell would say
    os._exit(code)


_PROBE = (
    "import os, sys; from reintegration.pipeline import sandbox; "
    "sandbox.enter(sandbox.Plan(hide=(sandbox.Path(sys.argv[1]),))); "
    "sys.exit(0 if [n for n in os.listdir('/proc') if n.isdigit()] == ['1'] else "
    "'sandbox: the kernel is not alone in its process namespace')"
)


def available() -> tuple[bool, str]:
    """Whether :func:`enter` works here, tried in a child process (the probe's
    namespace dies with it); the reason when it does not."""
    if not sys.platform.startswith("linux"):
        return False, f"no mount namespaces on {sys.platform}"
    import tempfile

    try:
        with tempfile.TemporaryDirectory() as probe_dir:
            done = subprocess.run(
                [sys.executable, "-c", _PROBE, probe_dir],
                capture_output=True,
                text=True,
                timeout=30,
            )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"the probe could not run: {exc}"
    if done.returncode == 0:
        return True, (
            "mount namespace with hidden and read-only custody folders; "
            "process namespace of the kernel's own"
        )
    lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
    return False, lines[-1] if lines else f"the probe exited with {done.returncode}"
