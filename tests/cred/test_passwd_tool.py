"""``tapster-passwd`` run as a real command, the password on stdin."""

from __future__ import annotations

import contextlib
import os
import pwd
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cred.credtools import run

from tapster.cred.checkers import PasswordFileChecker
from tapster.cred.credentials import UsernamePassword
from tapster.cred.errors import UnauthorizedLogin
from tapster.cred.hashing import identify


def passwd(
    *args: str, stdin: str | bytes = "", timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    return subprocess.run(
        [sys.executable, "-m", "tapster.cred.passwd_tool", *args],
        input=data,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def can_login(checker: PasswordFileChecker, user: str | bytes, password: str | bytes) -> bool:
    try:
        run(checker.request_avatar_id(UsernamePassword(user, password)))
    except UnauthorizedLogin:
        return False
    return True


def test_add_change_delete(tmp_path: Path) -> None:
    path = tmp_path / "users"
    result = passwd(str(path), "alice", stdin="first pass\n")
    assert result.returncode == 0, result.stderr
    assert b"added user 'alice'" in result.stdout
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert identify(path.read_text().split(":", 1)[1].strip()) == "argon2"
    checker = PasswordFileChecker(path)  # one checker throughout: it follows the file
    assert can_login(checker, "alice", "first pass")
    assert b"first pass" not in path.read_bytes()

    path.write_text("# keep me\n" + path.read_text() + "bob:!locked\n")
    os.chmod(path, 0o644)
    assert passwd(str(path), "alice", stdin="second\n").returncode == 0
    assert not can_login(checker, "alice", "first pass")
    assert can_login(checker, "alice", "second")
    lines = path.read_text().splitlines()
    assert lines[0] == "# keep me" and lines[2] == "bob:!locked" and len(lines) == 3
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # kept, less access for others

    result = passwd(str(path), "alice", "--delete")
    assert result.returncode == 0 and b"deleted" in result.stdout
    assert path.read_text() == "# keep me\nbob:!locked\n"
    assert [p.name for p in tmp_path.iterdir()] == ["users"]  # no temporary files left


def test_bcrypt_scheme_and_non_utf8_password(tmp_path: Path) -> None:
    path = tmp_path / "users"
    assert passwd(str(path), "carol", "--scheme", "bcrypt", stdin=b"\xffbytes\r\n").returncode == 0
    assert path.read_text().startswith("carol:$2b$")
    assert can_login(PasswordFileChecker(path), "carol", b"\xffbytes")


def test_errors_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "users"
    cases = [
        (passwd(str(path), "dave", stdin="\n"), b"empty password"),
        (passwd(str(path), "da:ve", stdin="pw\n"), b"cannot contain ':'"),
        (passwd(str(path), "nobody", "--delete"), b"no user 'nobody'"),
        (passwd(str(tmp_path / "no" / "users"), "x", stdin="pw\n"), b"no such folder"),
        (passwd(str(tmp_path), "x", stdin="pw\n"), b"is a directory"),
    ]
    for result, message in cases:
        assert result.returncode == 1
        assert message in result.stderr and result.stderr.count(b"\n") == 1, result.stderr
        assert b"Traceback" not in result.stderr
    assert not path.exists()


def test_password_never_on_the_command_line(tmp_path: Path) -> None:
    result = passwd(str(tmp_path / "users"), "eve", "hunter2")
    assert result.returncode == 2  # an extra argument is a usage error, not a password


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "the following arguments are required: FILE, USER"),
        (["users"], "the following arguments are required: USER"),
        (["--bogus", "users", "alice"], "unrecognized arguments: --bogus"),
        (["--scheme", "md5", "users", "alice"], "argument --scheme: invalid choice: 'md5'"),
        (["users", "alice", "extra"], "unrecognized arguments: extra"),
    ],
)
def test_usage_errors_are_one_line_and_a_hint(
    args: list[str], message: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tapster.cred.passwd_tool", *args],
        input=b"pw\n", capture_output=True, timeout=60, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2 and result.stdout == b""
    first, hint = result.stderr.decode().splitlines()
    assert first.startswith("tapster-passwd: error: ") and message in first, result.stderr
    assert hint == "Run 'tapster-passwd --help' for usage."
    assert list(tmp_path.iterdir()) == []


def test_console_script_installed() -> None:
    script = Path(sys.executable).with_name("tapster-passwd")
    assert script.exists(), "the console script tapster-passwd is not installed"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "FILE" in result.stdout and "USER" in result.stdout


def _on_a_terminal(args: list[str], answers: list[bytes]) -> tuple[int, bytes]:
    """Run tapster-passwd on a real pseudo-terminal, answering its prompts in turn."""
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:  # the child: stdin/stdout are the terminal
        os.execv(sys.executable, [sys.executable, "-m", "tapster.cred.passwd_tool", *args])
    seen = fresh = b""
    pending = list(answers)
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], 30)
            if not ready:
                raise AssertionError(f"tapster-passwd is stuck; it printed {seen!r}")
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
            fresh += chunk
            if pending and fresh.rstrip().endswith(b":"):
                os.write(fd, pending.pop(0) + b"\n")
                fresh = b""
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), seen


def test_prompts_twice_on_a_terminal(tmp_path: Path) -> None:
    path = tmp_path / "users"
    code, output = _on_a_terminal([str(path), "tty-user"], [b"typed secret", b"typed secret"])
    assert code == 0, output
    assert b"Password:" in output and b"Repeat password:" in output
    assert b"typed secret" not in output  # no echo
    assert can_login(PasswordFileChecker(path), "tty-user", "typed secret")

    code, output = _on_a_terminal([str(path), "tty-user"], [b"one", b"two"])
    assert code == 1 and b"do not match" in output
    assert can_login(PasswordFileChecker(path), "tty-user", "typed secret")


def _node(path: Path) -> tuple[int, int, int]:
    st = path.lstat()
    return st.st_ino, st.st_mode, st.st_rdev


@pytest.mark.parametrize("kind", ["device", "fifo", "socket"])
def test_special_files_are_refused_and_left_alone(kind: str, tmp_path: Path) -> None:
    """A device, named pipe or socket: one line, status 1, the node untouched, no hang."""
    path = tmp_path / kind
    with contextlib.ExitStack() as stack:
        if kind == "device":
            if os.geteuid() != 0:
                pytest.skip("making a device node needs root")
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a copy of /dev/null
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            sock = stack.enter_context(socket.socket(socket.AF_UNIX))
            sock.bind(str(path))
        before = _node(path)
        result = passwd(str(path), "alice", stdin="pw\n", timeout=20)
        assert result.returncode == 1, result
        assert result.stderr.count(b"\n") == 1 and b"Traceback" not in result.stderr
        named = {"device": b"character device", "fifo": b"named pipe", "socket": b"socket"}
        assert named[kind] in result.stderr and b"not a regular file" in result.stderr
        assert _node(path) == before
        assert sorted(p.name for p in tmp_path.iterdir()) == [kind]


def test_a_symbolic_link_leads_to_the_file_that_is_rewritten(tmp_path: Path) -> None:
    """The link stays; the real file elsewhere gets the user and keeps owner and mode."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "conf").mkdir()
    real = tmp_path / "etc" / "users"
    real.write_text("# shared\n")
    real.chmod(0o640)
    owner = (os.getuid(), os.getgid())
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        owner = (nobody.pw_uid, nobody.pw_gid)
        os.chown(real, *owner)
    link = tmp_path / "conf" / "users"
    link.symlink_to("../etc/users")  # relative, as packagers make them

    result = passwd(str(link), "alice", stdin="secret\n")
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and os.readlink(link) == "../etc/users"
    assert real.read_text().startswith("# shared\nalice:$argon2id$")
    st = real.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, *owner)
    assert can_login(PasswordFileChecker(link), "alice", "secret")
    assert [p.name for p in (tmp_path / "etc").iterdir()] == ["users"]  # no temporary file
    assert [p.name for p in (tmp_path / "conf").iterdir()] == ["users"]

    dangling = tmp_path / "conf" / "new"
    dangling.symlink_to(tmp_path / "etc" / "new-users")
    assert passwd(str(dangling), "bob", stdin="pw\n").returncode == 0
    assert dangling.is_symlink() and (tmp_path / "etc" / "new-users").read_text().startswith("bob:")
    assert stat.S_IMODE((tmp_path / "etc" / "new-users").stat().st_mode) == 0o600


def test_a_link_to_a_device_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    device = tmp_path / "null"
    os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    link = tmp_path / "users"
    link.symlink_to(device)
    result = passwd(str(link), "alice", stdin="pw\n", timeout=20)
    assert result.returncode == 1 and b"character device" in result.stderr, result
    assert link.is_symlink() and stat.S_ISCHR(device.lstat().st_mode)


def test_a_huge_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "users"
    with path.open("wb") as f:
        f.truncate(10 * 1024 * 1024 + 1)  # sparse: costs no disk
    before = path.stat()
    result = passwd(str(path), "alice", stdin="pw\n")
    assert result.returncode == 1 and result.stderr.count(b"\n") == 1, result
    assert b"larger than 10 MiB" in result.stderr
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    assert [p.name for p in tmp_path.iterdir()] == ["users"]
