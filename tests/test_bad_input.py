"""Bad input through the real commands: one line, the documented status, no traceback.

Every row of the tables below is one thing a user can get wrong (an option, a
number, a name, an endpoint string, an ``--auth`` string, a file, a ``.tac``
file), run through a real ``python -m tapster`` (or ``tapster-passwd``)
subprocess. Each must end with:

- the documented exit status (docs/runner.md: 2 for a usage error, 1 for a
  start-up failure);
- exactly one message line on stderr, ``tapster: ...``, that names the bad
  thing; usage errors add the line pointing at the right ``--help``, start-up
  failures do not (log lines that the foreground run wrote before failing are
  allowed, they are the log);
- no Python traceback and no Python-internal wording;
- no pidfile and no other stray file left behind (a daemon may leave its
  ``tapster.log``, which then holds the error and no traceback).

Placeholders in a row: ``{tmp}`` is the case's own empty working folder,
``{assets}`` a shared folder of prepared files (``.tac`` files, WSGI modules,
TLS files), ``{port}`` a free port, ``{busy}`` a port another socket holds.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import SRC, free_port, make_tls_files, run_tapster, tapster_env, wait_for_port

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [A-Z]+ \S+: ")
HINT = re.compile(r"^Run 'tapster( [\w-]+)? --help' for usage\.$")
# Words of Python's own exceptions: a user should never have to read them.
JARGON = (
    "Traceback",
    "[Errno",
    "invalid literal for int()",
    "could not convert string to float",
    " object at 0x",
    "<socket.socket",
)


@dataclass(frozen=True)
class Case:
    """One bad input: its arguments, the status it must give, what the message names."""

    id: str
    args: tuple[str, ...]
    status: int
    says: tuple[str, ...]


def usage(case_id: str, *args: str, says: tuple[str, ...] | str) -> object:
    """A case that must be a usage error (status 2)."""
    names = (says,) if isinstance(says, str) else says
    return pytest.param(Case(case_id, args, 2, names), id=case_id)


def startup(case_id: str, *args: str, says: tuple[str, ...] | str) -> object:
    """A case that must be a start-up failure (status 1)."""
    names = (says,) if isinstance(says, str) else says
    return pytest.param(Case(case_id, args, 1, names), id=case_id)


LISTEN = ("--listen", "tcp:{port}:interface=127.0.0.1")
PF_PORT = ("-p", "tcp:{port}:interface=127.0.0.1")

RUNNER_CASES = [
    usage("unknown-command", "frobnicate", says=("unknown command 'frobnicate'", "web")),
    usage("near-miss-command", "wbe", says=("unknown command 'wbe'", "did you mean web")),
    usage("near-miss-command-2", "portfowrard", says=("'portfowrard'", "portforward")),
    # The name as typed, quote and all (it used to be read back out of the message).
    usage("quoted-command", "we'b", says=('unknown command "we\'b"', "did you mean web")),
    usage("unknown-option", "--frobnicate", "web", says="unknown option '--frobnicate'"),
    usage("option-prefix", "--daem", "web", says=("'--daem'", "--daemon")),
    usage("unknown-short-option", "-Z", "web", says="-Z"),
    usage("missing-value", "--pidfile", says=("--pidfile", "needs a value")),
    usage("missing-value-short", "web", "-x", *LISTEN, says="-x"),
    usage("unknown-user", "-u", "no-such-user-xyz", "web", says=("-u", "'no-such-user-xyz'")),
    usage("empty-user", "--uid=", "web", says=("-u", "no user")),
    usage("uid-too-big", "-u", "4294967295", "web", *LISTEN,
          says=("-u", "'4294967295'", "between 0 and 4294967294")),
    usage("uid-huge", "--uid", "99999999999999999999999", "web", *LISTEN,
          says=("-u", "between 0 and 4294967294")),
    usage("gid-too-big", "-g", "4294967295", "web", *LISTEN,
          says=("-g", "'4294967295'", "between 0 and 4294967294")),
    usage("uid-other-script-digits", "-u", "\u0663", "web", *LISTEN, says=("-u", "no user")),
    usage("unknown-group", "-g", "no-such-group-xyz", "web", says=("-g", "no-such-group-xyz")),
    usage("umask-not-octal", "--umask", "999", "web", says=("--umask", "'999'", "octal")),
    usage("umask-word", "--umask", "abc", "web", says=("--umask", "'abc'")),
    usage("loop-unknown", "--loop", "turbo", "web", says=("--loop", "'turbo'", "--help-loops")),
    usage("log-level", "--log-level", "loud", "web", says=("--log-level", "'loud'", "debug")),
    usage("log-format", "--log-format", "xml", "web", says=("--log-format", "'xml'", "json")),
    usage("log-backups-negative", "--log-backups", "-1", "web", says=("--log-backups", "'-1'")),
    usage("log-rotate-size-zero", "--log-rotate-size", "0", "web", says="--log-rotate-size"),
    usage("log-backups-word", "--log-backups", "abc", "web",
          says=("--log-backups", "'abc'", "expected a whole number")),
    usage("log-backups-underscore", "--log-backups", "1_0", "web",
          says=("--log-backups", "'1_0'", "expected a whole number")),
    usage("log-rotate-size-word", "--log-rotate-size", "abc", "web",
          says=("--log-rotate-size", "'abc'", "expected a whole number of bytes")),
    usage("log-rotate-size-huge", "--log-rotate-size", "9" * 40, "web",
          says=("--log-rotate-size", "too large")),
    usage("shutdown-timeout-word", "--shutdown-timeout", "abc", "web",
          says=("--shutdown-timeout", "'abc'", "expected a number of seconds")),
    usage("shutdown-timeout-inf", "--shutdown-timeout", "inf", "web",
          says=("--shutdown-timeout", "'inf'", "expected a number of seconds")),
    usage("app-dir-missing", "--app-dir", "{tmp}/nope", "web", *LISTEN,
          says=("--app-dir", "{tmp}/nope", "no such directory")),
    usage("app-dir-is-file", "--app-dir", "{assets}/regular.txt", "web", *LISTEN,
          says=("--app-dir", "regular.txt", "not a directory")),
    usage("shutdown-timeout-negative", "--shutdown-timeout", "-1", "web", says="'-1'"),
    usage("shutdown-timeout-nan", "--shutdown-timeout", "nan", "web", says="'nan'"),
    usage("completion-shell", "--completion", "tcsh", says=("--completion", "'tcsh'", "bash")),
    usage("profiler-name", "--profiler", "perf", "web", says=("--profiler", "cprofile")),
    usage("savestats-alone", "--savestats", "web", says=("--savestats", "--profile")),
    usage("debug-and-daemon", "-b", "-D", "web", says=("--debug", "--daemon")),
    usage("nodaemon-and-daemon", "-n", "-D", "web", says=("--nodaemon", "--daemon")),
    usage("workers-zero", "-w", "0", "web", says=("-w", "'0'", "1 or more")),
    usage("worker-memory-alone", "--max-worker-memory", "1G", "web",
          says=("--max-worker-memory", "--workers")),
    usage("no-spare-alone", "--no-spare-worker", "web", says=("--no-spare-worker", "--workers")),
    usage("reuse-port-alone", "--reuse-port", "web", says=("--reuse-port", "--workers")),
    usage("tac-and-command", "-y", "{assets}/noapp.tac", "web", says=("-y", "web")),
    usage("log-level-empty", "--log-level=", "web", says=("--log-level", "''")),
    usage("daemon-log-to-stdout", "-D", "--logfile", "-", "web", says=("--logfile", "--daemon")),
    usage("non-utf8-command", "\udcff", says="unknown command"),
    usage("non-utf8-path", "web", "--path", "/tmp/\udcff-none", says=("--path", "no such")),
    startup("loop-module-missing", "--loop", "no_such_mod_xyz:make", "web", *LISTEN,
            says=("no_such_mod_xyz",)),
    startup("loop-attribute-missing", "--loop", "os:no_such_factory", "web", *LISTEN,
            says="no_such_factory"),
    startup("loop-factory-not-a-loop", "--loop", "os:getpid", "web", *LISTEN,
            says=("os:getpid", "not a loop")),
    startup("pidfile-missing-dir", "--pidfile", "{tmp}/nope/app.pid", "web", *LISTEN,
            says=("pidfile", "{tmp}/nope")),
    startup("pidfile-is-dir", "--pidfile", "{assets}", "web", *LISTEN,
            says=("pidfile", "directory")),
    startup("pidfile-symlink", "--pidfile", "{assets}/link.pid", "web", *LISTEN,
            says=("pidfile", "symbolic link")),
    startup("pidfile-is-device", "--pidfile", "{assets}/null-device", "web", *LISTEN,
            says=("pidfile", "null-device", "character device")),
    startup("pidfile-is-fifo", "--pidfile", "{assets}/fifo", "web", *LISTEN,
            says=("pidfile", "named pipe")),
    startup("pidfile-unrelated-file", "--pidfile", "{assets}/regular.txt", "web", *LISTEN,
            says=("pidfile", "regular.txt", "something other than a PID")),
    startup("daemon-pidfile-unrelated-file", "-D", "--pidfile", "{assets}/regular.txt", "web",
            *LISTEN, says=("pidfile", "regular.txt", "something other than a PID")),
    startup("logfile-missing-dir", "--logfile", "{tmp}/nope/app.log", "web", *LISTEN,
            says=("log file", "{tmp}/nope/app.log")),
    startup("logfile-is-dir", "--logfile", "{assets}", "web", *LISTEN,
            says=("log file", "directory")),
    startup("logfile-fifo-nobody-reads", "--logfile", "{assets}/fifo", "web", *LISTEN,
            says=("log file", "fifo", "named pipe nobody reads")),
    startup("logfile-missing-dir-with-pidfile", "--pidfile", "{tmp}/app.pid",
            "--logfile", "{tmp}/nope/app.log", "web", *LISTEN, says="{tmp}/nope/app.log"),
    startup("relative-pidfile-in-rundir", "--rundir", "{tmp}", "--pidfile", "nope/app.pid",
            "web", *LISTEN, says=("pidfile", "{tmp}/nope/app.pid")),
    startup("profile-missing-dir", "--profile", "{tmp}/nope/x.prof", "web", *LISTEN,
            says=("profile", "{tmp}/nope/x.prof", "no such folder {tmp}/nope")),
    startup("profile-dir-is-a-file", "--profile", "{assets}/regular.txt/x.prof", "web", *LISTEN,
            says=("profile", "regular.txt is not a folder")),
    startup("profile-is-device", "--profile", "{assets}/null-device", "web", *LISTEN,
            says=("profile", "character device")),
    startup("profile-left-out-when-start-fails", "--profile", "{tmp}/x.prof", "web",
            "--listen", "tcp:{busy}:interface=127.0.0.1", says="address already in use"),
    startup("daemon-profile-missing-dir", "-D", "--profile", "{tmp}/nope/x.prof", "web",
            *LISTEN, says=("profile", "no such folder {tmp}/nope")),
    startup("rundir-missing", "--rundir", "{tmp}/nope", "web", *LISTEN, says="{tmp}/nope"),
    startup("rundir-is-a-file", "--rundir", "{assets}/regular.txt", "web", *LISTEN,
            says=("run directory", "regular.txt is a regular file, not a directory")),
    startup("chroot-is-a-file", "--chroot", "{assets}/regular.txt", "web", *LISTEN,
            says=("chroot directory", "regular.txt is a regular file, not a directory")),
    startup("rundir-is-a-device", "--rundir", "{assets}/null-device", "web", *LISTEN,
            says=("run directory", "is a character device, not a directory")),
    startup("daemon-rundir-is-a-file", "-D", "--rundir", "{assets}/regular.txt", "web",
            *LISTEN, says="regular.txt is a regular file, not a directory"),
    startup("chroot-missing", "--chroot", "{tmp}/nope", "web", *LISTEN, says="{tmp}/nope"),
    startup("syslog-socket-missing", "--syslog", "--syslog-socket", "{tmp}/nope/log",
            "web", *LISTEN, says=("syslog", "{tmp}/nope/log")),
    startup("daemon-pidfile-missing-dir", "-D", "--pidfile", "{tmp}/nope/app.pid",
            "web", *LISTEN, says="{tmp}/nope"),
    startup("daemon-logfile-missing-dir", "-D", "--logfile", "{tmp}/nope/app.log",
            "web", *LISTEN, says="{tmp}/nope/app.log"),
    startup("daemon-chroot-missing", "-D", "--chroot", "{tmp}/nope", "web", *LISTEN,
            says="{tmp}/nope"),
    startup("daemon-rundir-missing", "-D", "--rundir", "{tmp}/nope", "web", *LISTEN,
            says="{tmp}/nope"),
]  # fmt: skip

TAC_CASES = [
    startup("tac-non-utf8-name", "-y", "{tmp}/\udcff.tac", says="cannot read"),
    startup("tac-missing", "-y", "{tmp}/missing.tac", says=("cannot read", "missing.tac")),
    startup("tac-is-dir", "-y", "{assets}", says="cannot read"),
    startup("tac-is-device", "-y", "{assets}/null-device",
            says=("cannot read", "null-device", "character device")),
    startup("tac-is-fifo", "-y", "{assets}/fifo", says=("cannot read", "fifo", "named pipe")),
    startup("tac-too-big", "-y", "{assets}/huge.tac",
            says=("cannot read", "huge.tac", "larger than 10 MiB")),
    startup("tac-syntax-error", "-y", "{assets}/syntax.tac", says=("syntax.tac:2", "syntax")),
    startup("tac-raises", "-y", "{assets}/raises.tac", says=("raises.tac:2", "boom")),
    startup("tac-bad-import", "-y", "{assets}/imports.tac", says=("imports.tac:1", "no_such")),
    startup("tac-not-utf8", "-y", "{assets}/binary.tac", says="binary.tac"),
    startup("tac-no-application", "-y", "{assets}/noapp.tac",
            says=("does not define 'application'", "Application(")),
    startup("tac-application-wrong-type", "-y", "{assets}/wrongtype.tac",
            says=("'application' is a int", "Application(")),
    startup("tac-unknown-user", "-y", "{assets}/baduser.tac",
            says=("baduser.tac:2", "uid='nosuchuser'", "no user named 'nosuchuser'")),
    startup("tac-gid-out-of-range", "-y", "{assets}/badgid.tac",
            says=("badgid.tac:2", "gid=4294967295")),
    startup("tac-calls-exit", "-y", "{assets}/exits.tac", says=("exits.tac", "exit(3)")),
    startup("tac-start-fails", "--pidfile", "{tmp}/app.pid", "-y", "{assets}/startfail.tac",
            says=("cannot start", "cannot reach the database")),
    startup("tac-privileged-start-fails", "-y", "{assets}/privfail.tac",
            says=("cannot start", "Permission denied")),
    startup("daemon-tac-syntax-error", "-D", "-y", "{assets}/syntax.tac", says="syntax.tac:2"),
    startup("daemon-tac-no-application", "-D", "-y", "{assets}/noapp.tac",
            says="does not define 'application'"),
    startup("daemon-tac-start-fails", "-D", "-y", "{assets}/startfail.tac",
            says="cannot reach the database"),
]  # fmt: skip

WEB_CASES = [
    usage("listen-unknown-type", "web", "--listen", "nope:80",
          says=("--listen", "'nope:80'", "unknown endpoint type", "tcp")),
    usage("listen-empty", "web", "--listen", "", says=("--listen", "type is missing")),
    usage("listen-unix-no-path", "web", "--listen", "unix:", says=("'unix:'", "path")),
    usage("listen-keyword-twice", "web", "--listen", "tcp:{port}:interface=::1:interface=::1",
          says="'interface' is given twice"),
    usage("listen-stray-argument", "web", "--listen", "tcp:{port}:interface",
          says="unexpected argument 'interface'"),
    usage("listen-negative-port", "web", "--listen", "tcp:-1", says=("'tcp:-1'", "port")),
    usage("listen-missing-port", "web", "--listen", "tcp", says=("'tcp'", "missing port")),
    usage("listen-empty-port", "web", "--listen", "tcp:", says=("'tcp:'", "port")),
    usage("listen-port-too-big", "web", "--listen", "tcp:99999", says=("99999", "65535")),
    usage("listen-port-word", "web", "--listen", "tcp:http", says=("'tcp:http'", "port")),
    usage("listen-udp", "web", "--listen", "udp:{port}",
          says=("--listen", "'udp:{port}'", "stream endpoint")),
    usage("listen-bad-keyword", "web", "--listen", "tcp:{port}:colour=red",
          says=("unknown keyword 'colour'", "tcp")),
    usage("listen-bad-interface", "web", "--listen", "tcp:{port}:interface=999.1.1.1",
          says=("999.1.1.1", "IP address")),
    usage("listen-tcp6-ipv4", "web", "--listen", "tcp6:{port}:interface=127.0.0.1",
          says=("tcp6", "IPv6")),
    usage("listen-bad-backlog", "web", "--listen", "tcp:{port}:backlog=lots", says="backlog"),
    usage("listen-unix-bad-mode", "web", "--listen", "unix:{tmp}/s.sock:mode=999",
          says=("mode", "octal")),
    usage("listen-ssl-no-cert", "web", "--listen", "ssl:{port}", says=("ssl", "cert=")),
    usage("listen-ssl-missing-cert", "web", "--listen", "ssl:{port}:cert={tmp}/none.pem",
          says=("certificate", "{tmp}/none.pem", "no such file")),
    usage("listen-ssl-not-pem", "web", "--listen", "ssl:{port}:cert={assets}/bad.pem",
          says=("bad.pem", "PEM")),
    usage("listen-ssl-no-key", "web", "--listen", "ssl:{port}:cert={assets}/tls/server.pem",
          says=("server.pem", "private key")),
    usage("listen-ssl-wrong-key", "web", "--listen",
          "ssl:{port}:cert={assets}/tls/server.pem:key={assets}/tls/other.key",
          says=("other.key", "does not belong")),
    usage("listen-ssl-missing-chain", "web", "--listen",
          "ssl:{port}:cert={assets}/tls/server.pem:key={assets}/tls/server.key:chain={tmp}/c",
          says=("chain", "{tmp}/c")),
    usage("listen-systemd-without-fds", "web", "--listen", "systemd:index=0",
          says=("systemd:index=0", "LISTEN_FDS")),
    usage("listen-fd-not-socket", "web", "--listen", "fd:99", says=("fd:99", "not an open socket")),
    usage("web-path-missing", "web", *LISTEN, "--path", "no/such/folder",
          says=("--path", "'no/such/folder'", "no such directory")),
    usage("web-path-is-file", "web", *LISTEN, "--path", "{assets}/bad.pem",
          says=("--path", "not a directory")),
    usage("wsgi-no-colon", "web", *LISTEN, "--wsgi", "wsgiapp", says=("--wsgi", "module:")),
    usage("wsgi-missing-module", "--app-dir", "{assets}", "web", *LISTEN,
          "--wsgi", "no_such_mod_xyz:app", says=("--wsgi", "cannot import 'no_such_mod_xyz'")),
    usage("wsgi-missing-attribute", "--app-dir", "{assets}", "web", *LISTEN,
          "--wsgi", "wsgiapp:nothing", says=("--wsgi", "'nothing'")),
    usage("wsgi-not-callable", "--app-dir", "{assets}", "web", *LISTEN,
          "--wsgi", "wsgiapp:number", says=("'number'", "not callable")),
    usage("wsgi-import-raises", "--app-dir", "{assets}", "web", *LISTEN,
          "--wsgi", "wsgiboom:app", says=("wsgiboom", "import boom")),
    usage("mime-type-no-equals", "web", *LISTEN, "--mime-type", "markdown",
          says=("--mime-type", "'markdown'", "EXT=TYPE")),
    usage("mime-type-no-ext", "web", *LISTEN, "--mime-type", "=text/plain", says="--mime-type"),
    usage("mime-type-not-a-type", "web", *LISTEN, "--mime-type", "md=markdown",
          says=("--mime-type", "md=markdown")),
    usage("max-body-word", "web", *LISTEN, "--max-body", "lots", says=("--max-body", "'lots'")),
    usage("max-body-negative", "web", *LISTEN, "--max-body", "-5", says=("--max-body", "'-5'")),
    usage("max-body-unit", "web", *LISTEN, "--max-body", "10Q", says=("--max-body", "'10Q'")),
    usage("threads-zero", "web", *LISTEN, "--threads", "0", says=("--threads", "'0'")),
    usage("request-timeout-negative", "web", *LISTEN, "--request-timeout", "-1",
          says="--request-timeout"),
    usage("index-path", "web", *LISTEN, "--index", "../secret", says=("--index", "../secret")),
    usage("realm-line-break", "web", *LISTEN, "--realm", "x\nb",
          says=("--realm", "'x\\nb'", "printable ASCII")),
    usage("realm-quote", "web", *LISTEN, "--realm", 'say "hi"',
          says=("--realm", "'\"' is not allowed")),
    usage("flag-with-value", "web", *LISTEN, "--no-gzip=yes", says=("--no-gzip", "no value")),
    usage("web-positional", "web", *LISTEN, "stray", says=("'stray'", "no arguments")),
    startup("listen-port-in-use", "web", "--listen", "tcp:{busy}:interface=127.0.0.1",
            says=("127.0.0.1:{busy}", "address already in use")),
    startup("listen-same-port-twice", "web", *LISTEN, *LISTEN,
            says=("{port}", "address already in use")),
    startup("port-in-use-with-pidfile", "--pidfile", "{tmp}/app.pid", "web",
            "--listen", "tcp:{busy}:interface=127.0.0.1", says="address already in use"),
    startup("port-in-use-with-logfile", "--pidfile", "{tmp}/app.pid", "--logfile",
            "{tmp}/app.log", "web", "--listen", "tcp:{busy}:interface=127.0.0.1",
            says="address already in use"),
    startup("daemon-port-in-use-with-logfile", "-D", "--pidfile", "{tmp}/app.pid", "--logfile",
            "{tmp}/app.log", "web", "--listen", "tcp:{busy}:interface=127.0.0.1",
            says="address already in use"),
    startup("daemon-port-in-use", "-D", "web", "--listen", "tcp:{busy}:interface=127.0.0.1",
            says="address already in use"),
    startup("listen-unix-missing-dir", "web", "--listen", "unix:{tmp}/nope/s.sock",
            says=("{tmp}/nope/s.sock", "no such file")),
    startup("listen-unix-over-regular-file", "web", "--listen", "unix:{assets}/regular.txt",
            says=("regular.txt", "not a socket")),
    startup("access-log-missing-dir", "web", *LISTEN, "--access-log-file", "{tmp}/no/a.log",
            says="{tmp}/no/a.log"),
]  # fmt: skip

AUTH_CASES = [
    usage("auth-unknown-type", "web", *LISTEN, "--auth", "ldap:x",
          says=("--auth", "unknown auth type 'ldap'", "memory")),
    usage("auth-empty", "web", *LISTEN, "--auth", "", says=("--auth", "unknown auth type")),
    usage("auth-memory-odd", "web", *LISTEN, "--auth", "memory:alice",
          says=("--auth memory", "USER:PASSWORD")),
    usage("auth-memory-empty", "web", *LISTEN, "--auth", "memory", says="--auth memory"),
    usage("auth-memory-same-user-twice", "web", *LISTEN, "--auth", "memory:a:1:a:2",
          says=("--auth memory", "user 'a' is given twice")),
    usage("auth-memory-empty-password", "web", *LISTEN, "--auth", "memory:a:",
          says=("--auth memory", "user 'a' has an empty password")),
    usage("auth-file-missing", "web", *LISTEN, "--auth", "file:{tmp}/users",
          says=("--auth file", "{tmp}/users")),
    usage("auth-file-no-path", "web", *LISTEN, "--auth", "file", says=("--auth file", "file:")),
    usage("auth-file-is-dir", "web", *LISTEN, "--auth", "file:{assets}",
          says=("--auth file", "directory")),
    usage("auth-passwd-shadow", "web", *LISTEN, "--auth", "passwd:{assets}/shadowed-passwd",
          says=("--auth passwd", "shadow", "--auth unix")),
    usage("auth-htpasswd-missing", "web", *LISTEN, "--auth", "htpasswd:{tmp}/.htpasswd",
          says=("--auth htpasswd", "{tmp}/.htpasswd")),
    usage("auth-file-is-fifo", "web", *LISTEN, "--auth", "file:{assets}/fifo",
          says=("--auth file", "{assets}/fifo", "named pipe")),
    usage("auth-htpasswd-is-device", "web", *LISTEN, "--auth", "htpasswd:{assets}/null-device",
          says=("--auth htpasswd", "{assets}/null-device", "character device")),
    usage("auth-passwd-is-fifo", "web", *LISTEN, "--auth", "passwd:{assets}/fifo",
          says=("--auth passwd", "named pipe")),
    usage("auth-unix-with-argument", "web", *LISTEN, "--auth", "unix:root",
          says=("--auth unix", "no arguments")),
    # HTTP Basic cannot carry an SSH key: refused before its argument is looked at
    # (sshkey's own argument errors are tested in tests/cred/test_strcred.py).
    usage("auth-sshkey-on-web", "web", *LISTEN, "--auth", "sshkey",
          says=("--auth", "'sshkey'", "SSHPrivateKey", "UsernamePassword")),
    usage("auth-sshkey-with-path-on-web", "web", *LISTEN, "--auth", "sshkey:/etc/keys",
          says=("'sshkey'", "UsernamePassword")),
    usage("help-auth-type-unknown", "web", "--help-auth-type", "nosuch",
          says=("--help-auth-type", "'nosuch'")),
    usage("help-auth-type-no-value", "web", "--help-auth-type", says="--help-auth-type"),
]  # fmt: skip

TOOL_CASES = [
    usage("portforward-dest-port-no-value", "portforward", "--dest-port",
          says=("--dest-port", "needs a value")),
    usage("portforward-dest-port-too-big", "portforward", *PF_PORT, "--dest-port", "99999",
          says=("--dest-port", "'99999'")),
    usage("portforward-dest-port-word", "portforward", *PF_PORT, "--dest-port", "ssh",
          says=("--dest-port", "'ssh'")),
    usage("portforward-dest-port-zero", "portforward", *PF_PORT, "-d", "0", says="--dest-port"),
    usage("portforward-empty-host", "portforward", *PF_PORT, "--host", "", says="--host"),
    usage("portforward-host-not-a-name", "portforward", *PF_PORT, "--host", "bad host!!",
          says=("--host", "'bad host!!'", "host name", "IP address")),
    usage("portforward-host-bad-ip", "portforward", *PF_PORT, "-h", "999.1.1.1",
          says=("-h", "'999.1.1.1'", "not a valid IP address")),
    usage("portforward-bare-port-too-big", "portforward", "-p", "99999",
          says=("--port", "99999")),
    usage("portforward-listen-unknown-type", "portforward", "-p", "nope:1",
          says=("--port", "'nope:1'")),
    usage("portforward-listen-udp", "portforward", "-p", "udp:{port}:interface=127.0.0.1",
          says=("--port", "'udp:{port}:interface=127.0.0.1'", "stream endpoint")),
    usage("portforward-dest-bad", "portforward", *PF_PORT, "--dest", "tcp:host=db",
          says=("--dest", "missing port")),
    usage("portforward-dest-and-host", "portforward", *PF_PORT, "--host", "db", "--dest",
          "tcp:host=127.0.0.1:port=1", says=("--dest", "--host")),
    usage("portforward-dest-and-dest-port", "portforward", *PF_PORT, "--dest",
          "tcp:host=127.0.0.1:port=1", "-d", "6665", says=("--dest", "--dest-port")),
    usage("portforward-dest-udp", "portforward", *PF_PORT, "--dest", "udp:host=db:port=1",
          says=("--dest", "udp")),
    usage("portforward-dest-missing-ca", "portforward", *PF_PORT, "--dest",
          "ssl:host=db:port=5432:ca={tmp}/ca.pem", says=("--dest", "CA file", "{tmp}/ca.pem")),
    usage("portforward-dest-no-host", "portforward", *PF_PORT, "--dest", "tcp:host=:port=1",
          says=("--dest", "needs a host")),
    usage("portforward-dest-timeout-word", "portforward", *PF_PORT, "--dest",
          "tcp:host=db:port=1:timeout=soon", says=("--dest", "timeout", "'soon'")),
    usage("portforward-max-connections", "portforward", *PF_PORT, "-m", "0", says="-m"),
    usage("portforward-connect-timeout", "portforward", *PF_PORT, "--connect-timeout", "-1",
          says="--connect-timeout"),
    usage("portforward-engine", "portforward", *PF_PORT, "--engine", "warp",
          says=("--engine", "'warp'")),
    usage("portforward-splice-tls", "portforward", "-p",
          "ssl:{port}:cert={assets}/tls/server.pem:key={assets}/tls/server.key",
          "--engine", "splice", says=("--engine splice", "TLS")),
    usage("procmon-no-command", "procmon", says=("no command", "--command")),
    usage("procmon-only-dashdash", "procmon", "--", says="no command"),
    usage("procmon-threshold-word", "procmon", "--threshold", "soon", "true",
          says=("--threshold", "'soon'")),
    usage("procmon-threshold-negative", "procmon", "-t", "-1", "true", says=("-t", "-1")),
    usage("procmon-killtime-inf", "procmon", "--killtime", "inf", "true", says="--killtime"),
    usage("procmon-min-above-max", "procmon", "-m", "10", "-M", "1", "true",
          says=("--minrestartdelay", "--maxrestartdelay")),
    usage("procmon-command-no-name", "procmon", "--command", "sleep 1",
          says=("--command", "NAME=COMMAND_LINE")),
    usage("procmon-command-empty", "procmon", "--command", "a=", says=("--command", "empty")),
    usage("procmon-command-twice", "procmon", "--command", "a=true", "--command", "a=true",
          says="already a command named 'a'"),
    usage("procmon-command-quote", "procmon", "--command", "a=echo 'unclosed",
          says=("--command", "quotation")),
]  # fmt: skip

EXAMPLE_CASES = [
    usage("myproject-port-too-big", "myproject", "-p", "99999", says=("-p", "'99999'")),
    usage("myproject-near-miss", "myprojet", says="did you mean myproject"),
    usage("myproject-bad-endpoint", "myproject", "--listen", "nope:1",
          says=("--listen", "unknown endpoint type 'nope'")),
    usage("myserver-auth-wrong-credentials", "myserver", "--auth", "sshkey",
          says=("sshkey", "UsernamePassword")),
]  # fmt: skip

EXAMPLE = SRC.parent / "examples" / "myproject"


@pytest.fixture(scope="module")
def assets() -> Iterator[Path]:
    """Prepared bad files, shared by every case (none of them is ever changed)."""
    root = Path(tempfile.mkdtemp(prefix="tapster-bad-input-"))
    root.chmod(0o755)
    files = {
        "noapp.tac": "greeting = 'hello'\n",
        "syntax.tac": "from tapster.service import Application\napplication = (\n",
        "raises.tac": "x = 1\nraise RuntimeError('boom')\n",
        "imports.tac": "import no_such_module_xyz\n",
        "wrongtype.tac": "application = 42\n",
        "exits.tac": "import sys\nsys.exit(3)\n",
        "startfail.tac": (
            "from tapster.service import Application, Service\n"
            "class Bad(Service):\n"
            "    async def start(self):\n"
            "        await super().start()\n"
            "        raise RuntimeError('cannot reach the database')\n"
            "application = Application('bad')\n"
            "Bad().set_parent(application)\n"
        ),
        "privfail.tac": (
            "from tapster.service import Application, Service\n"
            "class Bad(Service):\n"
            "    def privileged_start(self):\n"
            "        raise PermissionError(13, 'Permission denied', '/etc/secret')\n"
            "application = Application('bad')\n"
            "Bad().set_parent(application)\n"
        ),
        "baduser.tac": (
            "from tapster.service import Application\n"
            "application = Application('x', uid='nosuchuser')\n"
        ),
        "badgid.tac": (
            "from tapster.service import Application\n"
            "application = Application('x', gid=4294967295)\n"
        ),
        "wsgiapp.py": "number = 42\n",
        "wsgiboom.py": "raise RuntimeError('import boom')\n",
        "bad.pem": "this is not a certificate\n",
        "regular.txt": "precious\n",
        "shadowed-passwd": "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/a:/bin/sh\n",
    }
    for name, text in files.items():
        (root / name).write_text(text)
    (root / "binary.tac").write_bytes(b"\xff\xfe not utf-8\n")
    (root / "link.pid").symlink_to(root / "elsewhere.pid")
    os.mkfifo(root / "fifo")
    with open(root / "huge.tac", "wb") as huge:  # sparse: costs no disk space
        huge.truncate(11 << 20)
    with contextlib.suppress(PermissionError):  # a copy of /dev/null (root only)
        os.mknod(root / "null-device", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    (root / "tls").mkdir()
    make_tls_files(root / "tls")
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 that a listening socket of this test process holds."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def snapshot(folder: Path) -> dict[str, tuple[int, int, int, int, bytes | None]]:
    """Every file under ``folder``: inode, type and mode, device, size, small files' content."""
    seen = {}
    for path in folder.rglob("*"):
        st = path.lstat()
        small = stat.S_ISREG(st.st_mode) and st.st_size < 1 << 20
        content = path.read_bytes() if small else None
        key = str(path.relative_to(folder))
        seen[key] = (st.st_ino, st.st_mode, st.st_rdev, st.st_size, content)
    return seen


def listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def stop_stray_daemon(folder: Path) -> None:
    """A daemon that started although its input was bad must not outlive the test."""
    for pidfile in folder.rglob("*.pid"):
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pidfile.read_text()), signal.SIGTERM)


def message_lines(stderr: str) -> list[str]:
    """stderr without the log lines a foreground run wrote before it failed."""
    return [line for line in stderr.splitlines() if line.strip() and not LOG_LINE.match(line)]


def check_one_line(
    result: subprocess.CompletedProcess[str], status: int, says: tuple[str, ...], prefix: str
) -> str:
    """The checks every case shares; returns the message line."""
    shown = f"status {result.returncode}, stderr:\n{result.stderr}"
    for word in JARGON:
        assert word not in result.stderr, shown
    assert result.returncode == status, shown
    lines = message_lines(result.stderr)
    if status == 2 and prefix == "tapster":
        assert lines and HINT.match(lines[-1]), "a usage error ends with the --help hint\n" + shown
        lines = lines[:-1]
    assert len(lines) == 1, "exactly one message line\n" + shown
    message = lines[0]
    assert message.startswith(f"{prefix}: "), shown
    for needle in says:
        assert needle in message, f"the message should name {needle!r}\n" + shown
    return message


@pytest.mark.parametrize("case", RUNNER_CASES + TAC_CASES + WEB_CASES + AUTH_CASES + TOOL_CASES)
def test_bad_input(case: Case, tmp_path: Path, assets: Path, busy_port: int) -> None:
    values = {
        "tmp": str(tmp_path),
        "assets": str(assets),
        "port": str(free_port()),
        "busy": str(busy_port),
    }
    args = [fill(arg, values) for arg in case.args]
    says = tuple(fill(needle, values) for needle in case.says)
    needs_device = any("{assets}/null-device" in arg for arg in case.args)
    if needs_device and not (assets / "null-device").exists():
        pytest.skip("making a device node needs root")
    before = snapshot(assets)
    result = run_tapster(args, cwd=tmp_path, timeout=20)
    if result.returncode == 0 and "-D" in args:
        stop_stray_daemon(tmp_path)
    check_one_line(result, case.status, says, "tapster")
    # Nothing is left behind: no pidfile, no half-written file. A log file that was
    # opened before the failure stays, holding the error and no traceback.
    left = listing(tmp_path)
    for name in sorted(left):
        if name.endswith(".log"):
            log = (tmp_path / name).read_text()
            assert "Traceback" not in log, log
            assert says[-1] in log, log
            left.discard(name)
    assert left == set(), f"left behind: {sorted(left)}"
    assert snapshot(assets) == before, "a shared asset was changed"


@pytest.mark.parametrize("case", EXAMPLE_CASES)
def test_bad_input_to_the_example_project(case: Case) -> None:
    """The seed's MyProject plugins, run from their own folder as a developer would."""
    result = run_tapster(list(case.args), cwd=EXAMPLE, timeout=20)
    check_one_line(result, case.status, case.says, "tapster")


def test_bare_tapster_prints_help_and_exits_2(tmp_path: Path) -> None:
    result = run_tapster([], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("Usage: tapster")
    assert "Commands:" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_pidfile_of_a_live_instance_blocks_and_survives(tmp_path: Path, tapster_proc: Any) -> None:
    """A second start is refused with the PID; the first instance's pidfile stays intact."""
    pidfile = tmp_path / "app.pid"
    port = free_port()
    first = tapster_proc.start(
        "--pidfile", str(pidfile), "web", "--listen", f"tcp:{port}:interface=127.0.0.1",
        cwd=tmp_path, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for_port(port)
    other = f"tcp:{free_port()}:interface=127.0.0.1"
    for daemon in ([], ["-D"]):
        args = [*daemon, "--pidfile", str(pidfile), "web", "--listen", other]
        result = run_tapster(args, cwd=tmp_path, timeout=20)
        says = (f"already running as PID {first.pid}", str(pidfile), "--pidfile")
        check_one_line(result, 1, says, "tapster")
        assert pidfile.read_text() == f"{first.pid}\n"
    assert listing(tmp_path) == {"app.pid"}


def test_unix_socket_of_a_live_server_is_not_taken(tmp_path: Path, tapster_proc: Any) -> None:
    """A second server on the same Unix socket path fails in one line; the first keeps it."""
    path = tmp_path / "web.sock"
    first = tapster_proc.start(
        "web", "--listen", f"unix:{path}", "--path", str(tmp_path),
        cwd=tmp_path, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 15
    while True:
        with socket.socket(socket.AF_UNIX) as probe:
            if probe.connect_ex(str(path)) == 0:
                break
        assert first.poll() is None and time.monotonic() < deadline, "the first never listened"
        time.sleep(0.02)
    result = run_tapster(["web", "--listen", f"unix:{path}"], cwd=tmp_path, timeout=20)
    check_one_line(result, 1, (str(path), "another process is listening"), "tapster")
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(5)
        client.connect(str(path))
        client.sendall(b"HEAD / HTTP/1.0\r\n\r\n")
        assert client.recv(64).startswith(b"HTTP/1.")


def test_a_command_that_does_not_exist_is_logged_in_one_line(
    tmp_path: Path, tapster_proc: Any
) -> None:
    """procmon logs a program it cannot start, retries it, and stops cleanly (documented)."""
    log = tmp_path / "procmon.log"
    proc = tapster_proc.start(
        "--logfile", str(log), "procmon", str(tmp_path / "no-such-program"), cwd=tmp_path
    )
    deadline = time.monotonic() + 15
    while "restarting" not in (log.read_text() if log.exists() else ""):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "procmon never said it would retry"
        time.sleep(0.05)
    proc.terminate()
    _, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 0
    text = log.read_text()
    assert "Traceback" not in text + stderr
    failures = [line for line in text.splitlines() if "couldn't start" in line]
    assert failures and all("no-such-program" in line for line in failures)
    assert all("No such file or directory" in line for line in failures)


# tapster-passwd ------------------------------------------------------------------------

PASSWD = [sys.executable, "-m", "tapster.cred.passwd_tool"]


def passwd(args: list[str], stdin: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PASSWD, *args], input=stdin, cwd=cwd, env=tapster_env(),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "stdin", "says"),
    [
        pytest.param(["users", "alice"], "\n", "empty password refused", id="empty-password"),
        pytest.param(["users", "alice"], "", "empty password refused", id="no-password"),
        pytest.param(["nope/users", "alice"], "pw\n", "no such folder", id="missing-folder"),
        pytest.param(["users", "alice", "--delete"], "", "no user 'alice'", id="delete-unknown"),
        pytest.param(["sub", "alice"], "pw\n", "sub", id="file-is-a-folder"),
        pytest.param(["users", "al:ice"], "pw\n", "':'", id="colon-in-user-name"),
        pytest.param(["users", ""], "pw\n", "user name is empty", id="empty-user-name"),
    ],
)
def test_tapster_passwd_bad_input(args: list[str], stdin: str, says: str, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    result = passwd(args, stdin, tmp_path)
    check_one_line(result, 1, (says,), "tapster-passwd")
    assert listing(tmp_path) == {"sub"}, "nothing is written"


@pytest.mark.parametrize(
    ("name", "says"), [("null-device", "character device"), ("fifo", "named pipe")]
)
def test_tapster_passwd_leaves_special_files_alone(
    name: str, says: str, assets: Path, tmp_path: Path
) -> None:
    """A device or pipe is refused in one line, untouched, without waiting on the pipe."""
    if not (assets / name).exists():
        pytest.skip("making a device node needs root")
    before = snapshot(assets)
    result = passwd([str(assets / name), "alice"], "pw\n", tmp_path)
    check_one_line(result, 1, (str(assets / name), says), "tapster-passwd")
    assert snapshot(assets) == before, "a shared asset was changed"


def python_for_nobody() -> tuple[list[str], dict[str, str]] | None:
    """A command and environment with which user ``nobody`` runs this checkout's Python code.

    Our interpreter may live under a home directory nobody cannot enter; then the
    system's Python 3.11+ runs with ``src`` and our site-packages on its path.
    """
    site = sysconfig.get_paths()["purelib"]
    env = tapster_env({"PYTHONPATH": os.pathsep.join([str(SRC), site])})
    env.pop("HOME", None)
    for candidate in (sys.executable, "/usr/bin/python3"):
        try:
            probe = subprocess.run(
                [candidate, "-c", "import tapster.cred.passwd_tool"], user="nobody",
                group="nogroup", extra_groups=[], env=env, capture_output=True,
                timeout=30, check=False, cwd="/",
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            continue
        if probe.returncode == 0:
            return [candidate, "-m", "tapster.cred.passwd_tool"], env
    return None


@pytest.mark.parametrize("existing", [False, True], ids=["new-file", "existing-file"])
def test_tapster_passwd_where_the_user_cannot_write(existing: bool, tmp_path: Path) -> None:
    """As ``nobody``, in a root-owned folder: one line, status 1, no file, no temporary file."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a command as nobody")
    found = python_for_nobody()
    if found is None:
        pytest.skip("no Python interpreter that nobody may run with tapster's dependencies")
    command, env = found
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o755)
    tmp_path.chmod(0o755)
    users = folder / "users"
    if existing:
        users.write_text("# keep me\n")
        users.chmod(0o644)
    result = subprocess.run(
        [*command, str(users), "alice"], input="secret\n", user="nobody", group="nogroup",
        extra_groups=[], env=env, cwd="/", capture_output=True, text=True, timeout=30,
        check=False,
    )  # fmt: skip
    message = check_one_line(result, 1, (str(users),), "tapster-passwd")
    assert "ermission denied" in message
    assert listing(folder) == ({"users"} if existing else set())
    if existing:
        assert users.read_text() == "# keep me\n"
