"""Custody beyond the API: a step's kernel runs in a sandbox where the domains
its role may not read are not there, with a quiet log of its own."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from reintegration.core import custody
from reintegration.core.paths import Paths
from reintegration.pipeline import kernel, runner, sandbox, warm

SANDBOX, WHY = sandbox.available()
EXPORT = "synthetic_data/small/municipal/rotterdam/klanten.csv"
CBS = "synthetic_data/small/research/cbs/rotterdam/spells.csv"
KEYS = "synthetic_data/small/ttp/rotterdam/koppeltabel.csv"

# A researcher-role notebook that bypasses the step context on purpose.
CELLS = [
    'city = "rotterdam"\nsize = "small"',
    """import os
import pandas as pd
from reintegration.core import step
from reintegration.core.custody import CustodyError
root = os.environ["REINTEGRATION_ROOT"]
try:
    step.start("02_pseudonymise_link", city=city, size=size)
    print("role: taken")
except CustodyError:
    print("role: refused")
ctx = step.start("03_panel", city=city, size=size)
print("cbs rows:", len(pd.read_csv(f"{root}/CBS")))
for name in ("KEYS", "CBS"):
    try:
        open(f"{root}/{name}", "a").close()
        print("write", name, ": allowed")
    except OSError as exc:
        print("write", name, ":", type(exc).__name__)""".replace("CBS", CBS).replace("KEYS", KEYS),
    f'pd.read_csv(f"{{root}}/{EXPORT}")',
]


def _tree(tmp_root, monkeypatch):
    for rel, text in ((EXPORT, "bsn,name\n111222333,Jansen\n"), (CBS, "rin\n1\n2\n3\n")):
        (tmp_root / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_root / rel).write_text(text, encoding="utf-8")
    (tmp_root / KEYS).parent.mkdir(parents=True, exist_ok=True)
    (tmp_root / KEYS).write_text("bsn,rin\n", encoding="utf-8")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "reintegration", "language": "python", "display_name": "P"}
    nbformat.write(nb, tmp_root / "notebooks" / "03_panel.ipynb")
    monkeypatch.setenv("REINTEGRATION_BUILD_DIR", str(tmp_root / "build"))
    return Paths.for_size("small", tmp_root)


def _outputs(path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))


@pytest.mark.skipif(not SANDBOX, reason=f"no mount namespace here: {WHY}")
def test_researcher_step_cannot_read_a_municipal_file_directly(tmp_root, monkeypatch, capfd):
    paths = _tree(tmp_root, monkeypatch)
    monkeypatch.setenv(sandbox.MODE_ENV, "required")
    with pytest.raises(runner.StepFailed) as err:
        runner.run_step("03_panel", city="rotterdam", size="small", root=tmp_root)
    msg = str(err.value)
    # the real error still reaches the runner: the cell and the exception
    assert "failed in cell 4" in msg and "FileNotFoundError" in msg, msg
    assert "111222333" not in msg
    printed = _outputs(custody.failed_dir(paths, "rotterdam", "researcher") / "03_panel.ipynb")
    assert "role: refused" in printed
    assert "cbs rows: 3" in printed  # its own domain stays readable
    # inputs are read-only; the key table is not even there
    assert f"write {CBS} : OSError" in printed
    assert f"write {KEYS} : FileNotFoundError" in printed
    # outside the sandbox nothing changed
    assert (tmp_root / EXPORT).read_text(encoding="utf-8").startswith("bsn,name")
    assert (tmp_root / KEYS).exists()
    quiet = capfd.readouterr()
    for noise in ("without encryption", "KeyboardInterrupt"):
        assert noise not in quiet.out + quiet.err
    log = paths.city_build_domain("rotterdam", "research") / "logs" / "03_panel.kernel.log"
    assert log.exists() and (log.stat().st_mode & 0o077) == 0


def test_without_the_sandbox_the_same_read_succeeds_and_logs_stay_quiet(
    tmp_root, monkeypatch, capfd
):
    """The control: with the sandbox off, only the checks in code hold, and the
    direct read goes through (the notebook then fails on purpose later)."""
    paths = _tree(tmp_root, monkeypatch)
    nb_path = tmp_root / "notebooks" / "03_panel.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells[2].source += "\nprint('export rows:', len(_))\nraise ValueError('planted')"
    nb.cells[2].source = "_ = " + nb.cells[2].source
    nbformat.write(nb, nb_path)
    monkeypatch.setenv(sandbox.MODE_ENV, "off")
    with pytest.raises(runner.StepFailed, match=r"cell 4 \(ValueError"):
        runner.run_step("03_panel", city="rotterdam", size="small", root=tmp_root)
    printed = _outputs(custody.failed_dir(paths, "rotterdam", "researcher") / "03_panel.ipynb")
    assert "role: refused" in printed and "export rows: 1" in printed
    quiet = capfd.readouterr()
    for noise in ("without encryption", "KeyboardInterrupt"):
        assert noise not in quiet.out + quiet.err


def test_plan_hides_what_the_role_may_not_read(tmp_path):
    folders = []
    for domain in sandbox.PERSON_DOMAINS:
        data = tmp_path / "data" / domain
        build = tmp_path / "build" / domain
        data.mkdir(parents=True)
        build.mkdir(parents=True)
        folders += [(data, domain, True), (build, domain, False)]
    (tmp_path / "data" / "municipal" / "nested").mkdir()
    folders.append((tmp_path / "data" / "municipal" / "nested", "municipal", True))
    folders.append((tmp_path / "missing", "truth", True))

    researcher = sandbox.plan_for("researcher", folders)
    hidden = {p.relative_to(tmp_path).as_posix() for p in researcher.hide}
    assert hidden == {f"{w}/{d}" for w in ("data", "build") for d in ("municipal", "ttp", "truth")}
    assert {p.relative_to(tmp_path).as_posix() for p in researcher.read_only} == {"data/research"}

    linking = sandbox.plan_for("linking_unit", folders)
    assert {p.relative_to(tmp_path).as_posix() for p in linking.hide} == {
        "data/truth",
        "build/truth",
        "data/research",  # the CBS files; it writes build/research, so that stays
    }
    # reads the exports and the municipal step's outputs, writes neither
    assert {"data/municipal", "build/municipal", "data/ttp"} <= {
        p.relative_to(tmp_path).as_posix() for p in linking.read_only
    }
    assert "build/ttp" not in {p.relative_to(tmp_path).as_posix() for p in linking.read_only}


def test_kernel_log_lives_in_the_steps_own_person_domain():
    assert kernel.log_domain("researcher") == "research"
    assert kernel.log_domain("municipality") == "municipal"
    assert kernel.log_domain("linking_unit") == "ttp"
    assert kernel.log_domain("validator") == "truth"


def test_launcher_refuses_to_start_a_kernel_without_its_sandbox(tmp_path):
    log = tmp_path / "k.log"
    missing = tmp_path / "not-a-folder"
    cmd = [sys.executable, "-m", "reintegration.pipeline.kernel", "--hide", str(missing),
           "--", "true"]
    with log.open("w") as fh:
        done = subprocess.run(cmd, check=False, stderr=fh)
    assert done.returncode == 70
    assert "sandbox:" in log.read_text(encoding="utf-8")
    failure = kernel.failure("03_panel", "rotterdam", log, RuntimeError("dead"))
    assert "sandbox:" in failure and str(log) in failure


def test_without_a_sandbox_the_runner_says_so_once_or_refuses(tmp_root, monkeypatch, capsys):
    monkeypatch.setenv("REINTEGRATION_BUILD_DIR", str(tmp_root / "build"))
    monkeypatch.setattr(sandbox, "available", lambda: (False, "no mount namespaces on win32"))
    paths = Paths.for_size("small", tmp_root)
    monkeypatch.setenv(sandbox.MODE_ENV, "auto")
    first = kernel.prepare(paths, "03_panel", "rotterdam", "small", "researcher")
    second = kernel.prepare(paths, "04_describe", "rotterdam", "small", "researcher")
    for launch in (first, second):
        kernel.remove_sockets(launch["sockets"])
        assert launch["custody"]["enforced_by"] == "code"
        assert launch["custody"]["plan"] is None
    err = capsys.readouterr().err
    assert err.count("no operating-system sandbox") == 1 and "win32" in err
    monkeypatch.setenv(sandbox.MODE_ENV, "required")
    with pytest.raises(sandbox.SandboxError, match="required but no sandbox"):
        kernel.prepare(paths, "03_panel", "rotterdam", "small", "researcher")


@contextlib.contextmanager
def started_kernel(launch: list[str], env: dict, log: Path, *, client: bool = True):
    """A kernel started through the runner's manager class with ``launch``,
    and (``client``) a client on it that found it ready; both are shut down
    and the kernel's folder removed at the end."""
    import asyncio

    from jupyter_client.blocking import BlockingKernelClient

    cls, sockets = kernel.manager_class(launch, env=env, log=log)
    km = cls(kernel_name="reintegration")
    asyncio.run(km.start_kernel())
    kc = None
    try:
        if client:
            kc = BlockingKernelClient(connection_file=km.connection_file)
            kc.load_connection_file()
            kc.start_channels(hb=False)  # no heartbeat: a server may still be starting
            kc.wait_for_ready(timeout=60)
        yield km, kc
    finally:
        if kc is not None and kc.channels_running:
            kc.stop_channels()
        asyncio.run(km.shutdown_kernel(now=True))
        kernel.remove_sockets(sockets)


def printed(kc, code: str, timeout: float = 60) -> str:
    """What ``code`` printed in the kernel of ``kc``; the cell must succeed."""
    seen: list[str] = []
    reply = kc.execute_interactive(
        code, timeout=timeout, output_hook=lambda m: seen.append(m["content"].get("text", ""))
    )
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(seen)


def interrupted(kc, interrupt) -> str:
    """Run a cell that sleeps and call ``interrupt()`` once it runs (an
    interrupt between cells is ignored); what the kernel printed."""
    kc.execute("import time\ntry:\n    print('sleeping', flush=True)\n"
               "    time.sleep(60)\nexcept KeyboardInterrupt:\n    print('interrupted')")
    texts: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "interrupted" not in "".join(texts):
        texts.append(kc.get_iopub_msg(timeout=30)["content"].get("text", ""))
        if texts[-1].startswith("sleeping"):
            interrupt()
    return "".join(texts)


def _in_namespace(inode: int) -> set[tuple[int, str]]:
    """The processes (as this process sees them) in the process namespace
    ``inode``, each as its process id and start time (an identity that a
    later process cannot take over, as it could the namespace's number)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}/ns/pid").st_ino == inode:
                    found.add((int(entry), _started(int(entry))))
            except OSError:
                pass
    return found


def _started(pid: int) -> str:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        return fh.read().rsplit(")", 1)[1].split()[19]  # field 22: the start time


def _running(processes: set[tuple[int, str]]) -> set[tuple[int, str]]:
    """Those of ``processes`` that still run (and did not exit and leave
    their id to another)."""
    left = set()
    for pid, start in processes:
        try:
            if _started(pid) == start:
                left.add((pid, start))
        except (OSError, IndexError):
            pass
    return left


def _until_ended(processes: set[tuple[int, str]], launcher=None, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while (_running(processes) or (launcher is not None and launcher.poll() is None)) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)


@pytest.mark.skipif(not SANDBOX, reason=f"no mount namespace here: {WHY}")
@pytest.mark.parametrize("warm_kernels", ["off", "auto"])
def test_a_sandboxed_kernel_sees_no_other_process_and_ends_with_its_launcher(
    tmp_path, monkeypatch, warm_kernels
):
    """The way round the hidden folders that /proc offered: /proc/<pid>/root/
    of a process outside the sandbox (the runner, say) shows that process's
    mounts, hidden folder included. The kernel is alone in a process namespace
    of its own, with its own /proc: no such process is there. It still takes
    an interrupt, and ends when its launcher is told to end or is killed."""
    import asyncio

    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "f.txt").write_text("111222333\n", encoding="utf-8")
    monkeypatch.setenv("REINTEGRATION_WARM_KERNELS", warm_kernels)
    plan = sandbox.Plan(hide=(secret,))
    ends = {}
    for how in ("shutdown", "SIGTERM", "SIGKILL"):
        with started_kernel(kernel.launch_command(plan), {}, tmp_path / f"{how}.log") as (km, kc):
            code = (
                "import ctypes, glob, os, sys\n"
                f"paths = glob.glob('/proc/*/root{secret}/f.txt') + "
                f"glob.glob('/proc/*/cwd{secret}/f.txt')\n"
                "libc = ctypes.CDLL(None, use_errno=True)\n"  # take the cover off: refused
                f"libc.umount2({str(secret).encode()!r}, 2)\n"
                "print('linearmodels' in sys.modules, os.getpid(),"
                " os.stat('/proc/self/ns/pid').st_ino, len(paths),"
                f" os.listdir({str(secret)!r}),"
                " sorted(p for p in os.listdir('/proc') if p.isdigit()))"
            )
            was_warm, pid, inode, readable, listed, procs = printed(kc, code).split(maxsplit=5)
            if warm.enabled():  # the path asked for is the path taken
                assert was_warm == str(warm_kernels == "auto")
            assert (pid, readable, listed, procs.strip()) == ("1", "0", "[]", "['1']")
            inner = _in_namespace(int(inode))
            assert len(inner) == 1, "the kernel, seen from outside"
            launcher = km.provisioner.process
            if how == "shutdown":  # an interrupt still reaches the cell
                assert "interrupted" in interrupted(kc, lambda: asyncio.run(km.interrupt_kernel()))
                kc.stop_channels()
                asyncio.run(km.shutdown_kernel())
            else:
                kc.stop_channels()
                os.kill(launcher.pid, getattr(signal, how))
            _until_ended(inner, launcher)
            ends[how] = (launcher.poll(), _running(inner))
    assert ends == {
        "shutdown": (0, set()),
        "SIGTERM": (-signal.SIGTERM, set()),
        "SIGKILL": (-signal.SIGKILL, set()),
    }


SANDBOXED_RUNNER = """import asyncio, os, sys, time
from pathlib import Path
from jupyter_client.blocking import BlockingKernelClient
from reintegration.pipeline import kernel, sandbox
plan = sandbox.Plan(hide=(Path(sys.argv[2]),))
cls, _ = kernel.manager_class(kernel.launch_command(plan), env={}, log=Path(sys.argv[1]))
km = cls(kernel_name="reintegration")
asyncio.run(km.start_kernel())
kc = BlockingKernelClient(connection_file=km.connection_file)
kc.load_connection_file()
kc.start_channels(hb=False)
kc.wait_for_ready(timeout=60)
out = []
kc.execute_interactive("import os; print(os.stat('/proc/self/ns/pid').st_ino)", timeout=60,
                       output_hook=lambda m: out.append(m["content"].get("text", "")))
print("".join(out).strip(), km.connection_file, flush=True)
time.sleep(120)"""


@pytest.mark.skipif(not SANDBOX, reason=f"no mount namespace here: {WHY}")
@pytest.mark.parametrize("warm_kernels", ["off", "auto"])
def test_a_sandboxed_kernel_ends_when_its_runner_is_killed(tmp_path, warm_kernels):
    """SIGKILL of the runner (make killed) leaves nothing of the kernel
    running: inside its process namespace ipykernel cannot see its parent go,
    so its stand-in (or, for a warm kernel, its launcher) ends it."""
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    env = {**os.environ, "REINTEGRATION_WARM_KERNELS": warm_kernels}
    runner_proc = subprocess.Popen(
        [sys.executable, "-c", SANDBOXED_RUNNER, str(tmp_path / "k.log"), str(hidden)],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    try:
        inode, connection_file = runner_proc.stdout.readline().split()
        inner = _in_namespace(int(inode))
        assert len(inner) == 1
    finally:
        runner_proc.kill()
        runner_proc.wait()
    _until_ended(inner)
    kernel.remove_sockets(Path(connection_file).parent)  # the killed runner could not
    assert _running(inner) == set()


# From inside a sandboxed kernel: read each connection file given, and have that
# kernel print the planted file (which this kernel's sandbox hides).
REACH = """import json
from jupyter_client.blocking import BlockingKernelClient
for path in PATHS:
    try:
        info = json.load(open(path))
    except OSError as exc:
        print(path, "file:", type(exc).__name__)
        continue
    kc = BlockingKernelClient()
    kc.load_connection_file(path)
    kc.start_channels(hb=False)
    got = []
    try:
        kc.wait_for_ready(timeout=5)
        kc.execute_interactive("print(open(SECRET).read())", timeout=10,
                               output_hook=lambda m: got.append(m["content"].get("text", "")))
        print(path, "reached:", "".join(got).strip())
    except (RuntimeError, TimeoutError) as exc:
        print(path, "not reached:", info["transport"], type(exc).__name__)
    finally:
        kc.stop_channels()
"""


@pytest.mark.skipif(not SANDBOX, reason=f"no mount namespace here: {WHY}")
@pytest.mark.parametrize("warm_kernels", ["off", "auto"])
def test_a_sandboxed_kernel_cannot_have_another_kernel_run_code_for_it(
    tmp_path, monkeypatch, warm_kernels
):
    """Two steps run at once (make -j2). A kernel's connection file holds the
    key that signs its messages: code in one step that read another kernel's
    file could have that kernel, whose role may read more, run code and print
    the result back. Each kernel's file and sockets are in a folder the other
    kernels' sandboxes hide (tried before: the file of a kernel with a more
    permissive sandbox was read and the planted file printed back); and a
    kernel outside the runner on TCP (JupyterLab, notebook validation), whose
    file lies in the temporary folder, is out of reach of a kernel without a
    network."""

    from jupyter_client.manager import KernelManager

    secret = tmp_path / "secret"
    secret.mkdir()
    planted = secret / "f.txt"
    planted.write_text("111222333\n", encoding="utf-8")
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv("REINTEGRATION_WARM_KERNELS", warm_kernels)
    with contextlib.ExitStack() as stack:
        victim, _ = stack.enter_context(started_kernel(  # may read the secret
            kernel.launch_command(sandbox.Plan(hide=(other,))), {}, tmp_path / "victim.log",
            client=False))
        outside = KernelManager(kernel_name="reintegration")  # no runner, TCP, file in /tmp
        outside.start_kernel()
        stack.callback(outside.shutdown_kernel, now=True)
        _, kc = stack.enter_context(started_kernel(
            kernel.launch_command(sandbox.Plan(hide=(secret,))), {}, tmp_path / "attacker.log"))
        paths = [victim.connection_file, outside.connection_file]
        code = REACH.replace("PATHS", repr(paths)).replace("SECRET", repr(str(planted)))
        text = printed(kc, code, timeout=120)
        assert f"{victim.connection_file} file: FileNotFoundError" in text, text
        assert f"{outside.connection_file} not reached: tcp" in text, text
        assert "111222333" not in text


@pytest.mark.skipif(not SANDBOX, reason=f"no mount namespace here: {WHY}")
@pytest.mark.parametrize("warm_kernels", ["off", "auto"])
def test_a_sandboxed_kernel_cannot_change_the_code_a_later_kernel_runs(
    tmp_path, monkeypatch, warm_kernels
):
    """A step could otherwise plant code that a later step's kernel, with
    another role, runs for it: a module of this package or of a library, a
    template, a configuration file, an IPython start-up script, the make rules
    in the build folder, a setting in the home folder that git or a shell
    runs. Every such folder is read-only in the sandbox (and the kernel still
    runs: IPython keeps its history in memory); the step's own city's build
    folder and the cache stay writable."""
    import errno

    from conftest import ROOT

    monkeypatch.setenv("REINTEGRATION_WARM_KERNELS", warm_kernels)
    folders = kernel.code_folders(ROOT)
    assert ROOT in folders  # src, notebooks and config with it
    env = {"REINTEGRATION_ROOT": str(ROOT), "REINTEGRATION_CITY": "rotterdam",
           "REINTEGRATION_SIZE": "small"}
    city_build = Paths.for_size("small", ROOT).city_build("rotterdam")
    city_build.mkdir(parents=True, exist_ok=True)
    # the make rules beside the cities' folders, and the home's own settings
    refused = [*folders, city_build.parent, Path.home()]
    allowed = [city_build, Path.home() / ".cache"]
    code = (
        "import os\n"
        f"for folder in {[str(f) for f in [*refused, *allowed]]!r}:\n"
        "    try:\n"
        "        open(os.path.join(folder, 'planted.py'), 'x').close()\n"
        "        print(folder, 'written')\n"
        "    except OSError as exc:\n"
        "        print(folder, exc.errno)"
    )
    try:
        launch = kernel.launch_command(sandbox.Plan())
        with started_kernel(launch, env, tmp_path / "k.log") as (_, kc):
            text = printed(kc, code)
        # the step's own city's build folder inside the read-only repository,
        # and the cache, stay writable
        assert text.split("\n")[:-1] == [
            *(f"{f} {errno.EROFS}" for f in refused), *(f"{f} written" for f in allowed)]
    finally:
        for folder in [*refused, *allowed]:  # never left behind, should the check fail
            (folder / "planted.py").unlink(missing_ok=True)


def test_a_forged_log_of_reads_stops_the_step_before_anything_is_recorded(
    tmp_root, monkeypatch
):
    """The log of a step's reads lies where the kernel can write. Code that
    added a hidden file to it would have the runner, outside the sandbox,
    record that file's SHA-256 in the provenance; the runner checks every
    logged file against the role first."""
    import json

    paths = _tree(tmp_root, monkeypatch)
    nb_path = tmp_root / "notebooks" / "03_panel.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    forge = (
        "import json, os\n"
        "from reintegration.core import step\n"
        "ctx = step.start('03_panel', city=city, size=size)\n"
        "log = ctx.io_log()\n"
        "ctx._log_path.parent.mkdir(parents=True, exist_ok=True)\n"
        f"log['reads'][os.path.join(os.environ['REINTEGRATION_ROOT'], {EXPORT!r})] = 'research'\n"
        "ctx._log_path.write_text(json.dumps(log))"
    )
    nb.cells = [nb.cells[0], nbformat.v4.new_code_cell(forge)]
    nbformat.write(nb, nb_path)
    with pytest.raises(runner.StepFailed, match="may not read .*klanten.csv"):
        runner.run_step("03_panel", city="rotterdam", size="small", root=tmp_root)
    assert not (paths.provenance_dir("rotterdam") / "03_panel.json").exists()
    assert json.loads((paths.provenance_dir("rotterdam") / "03_panel.io.json").read_text())


def test_the_person_level_folders_of_another_size_are_hidden_too(tmp_root, monkeypatch):
    """A step of one size must not read the files of a build of another size
    lying beside it (small and full share the repository)."""
    from reintegration.core.config import list_cities

    monkeypatch.delenv("REINTEGRATION_BUILD_DIR", raising=False)
    small, full = Paths.for_size("small", tmp_root), Paths.for_size("full", tmp_root)
    for folder in (full.data_dir / "municipal", full.city_build_domain("rotterdam", "municipal"),
                   full.city_build_domain("rotterdam", "research")):
        folder.mkdir(parents=True)
    folders = kernel.custody_folders(small, list_cities(tmp_root))
    researcher = sandbox.plan_for("researcher", folders)
    assert {full.data_dir / "municipal", full.city_build_domain("rotterdam", "municipal")} <= set(
        researcher.hide)
    # its own domain of the other size may be read, not written
    assert full.city_build_domain("rotterdam", "research") in researcher.read_only
