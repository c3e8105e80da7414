"""Running the real tools (`tools/*.py`) in subprocesses, and reading what they say.

Shared by the fault battery and its bad-inputs table: a tool's refusal is judged the
way a user sees it (exit status, `error:` lines, any traceback on stderr).
"""

import hashlib
import os
import pathlib
import signal
import subprocess
import sys
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
TIMEOUT = 600


def tool_env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return env


def run_tool(args, timeout=TIMEOUT):
    """Runs `python ARGS...` from the repository root; returns the CompletedProcess."""
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO_ROOT, env=tool_env(),
                          capture_output=True, text=True, timeout=timeout)


def run_python(code, *args, timeout=TIMEOUT):
    """Runs `code` in a fresh interpreter (`python -c`) with `args` as sys.argv[1:]."""
    return run_tool(["-c", code, *args], timeout=timeout)


def start_tool(args, log_path):
    log = open(log_path, "w")
    return subprocess.Popen([sys.executable, *map(str, args)], cwd=REPO_ROOT, env=tool_env(),
                            stdout=log, stderr=subprocess.STDOUT)


def kill_when(proc, ready, poll=0.001, timeout=TIMEOUT):
    """SIGKILLs `proc` as soon as `ready()` holds; returns whether it was still alive then."""
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(poll)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
        raise RuntimeError("the process neither finished nor reached its kill point")
    return False


def error_lines(text):
    return [line for line in text.splitlines() if line.startswith("error:")]


def one_clear_line(result):
    """A refusal as the tools promise it: non-zero exit, one `error:` line, no traceback."""
    return (result.returncode != 0 and "Traceback" not in result.stderr
            and len(error_lines(result.stderr)) == 1)


def sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def tree_digest(root):
    """{relative path: sha256} of every file under `root` ({} if it does not exist)."""
    root = pathlib.Path(root)
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}
