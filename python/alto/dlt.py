"""Singer taps as dlt sources, run by alto: ``from alto.dlt import singer``.

``singer("tap-x")`` is a dlt source with one resource per stream the tap's
``select`` rules (or ``streams``) select; ``pipeline.run(singer("tap-x"))``
loads each stream into its own table. All configuration, catalogs, hash rules
and plugin builds are alto's: this module only runs ``alto extract`` and
reads its stdout line by line, handing each stream's records to its resource
in small batches, so no stream is held in memory.

The tap's Singer state lives in dlt's source state, which dlt commits with the
load: a failed extract or load never advances it, and the next run resumes
from what dlt committed. After each successful extract the state is also
mirrored to alto's remote as ``state/<env>/<tap>-to-dlt_<pipeline>.json``,
so ``alto state show <tap>:dlt_<pipeline>`` shows it.
"""

import collections
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading

import dlt

__all__ = ["singer", "find_alto", "AltoError"]

# Records handed to a resource at once: dlt takes a list as one page.
BATCH = 1000
# stderr lines kept to explain a failure.
TAIL_LINES = 20


class AltoError(RuntimeError):
    """alto (or the tap it runs) failed; the message ends with its last log lines."""


def find_alto():
    """The ``alto`` binary: ``$ALTO_BIN``, else the one the wheel installed
    beside this interpreter, else the first on PATH."""
    override = os.environ.get("ALTO_BIN")
    if override:
        return override
    for directory in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        candidate = os.path.join(directory or "", "alto")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("alto")
    if found:
        return found
    raise AltoError(
        "cannot find the alto binary: install the alto-rs wheel in this environment, "
        "put alto on PATH, or set ALTO_BIN"
    )


def _prefix(env, root):
    args = [find_alto()]
    if env:
        args += ["--env", env]
    if root:
        args += ["--root", os.fspath(root)]
    return args


def _select_args(streams):
    args = []
    for s in streams:
        args += ["--select", s]
    return args


def _failure(what, code, tail):
    lines = "\n".join(tail) if tail else "(it printed nothing)"
    return AltoError("%s failed (exit %s); its last log lines:\n%s" % (what, code, lines))


def _call(args, what):
    done = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace").splitlines()
        raise _failure(what, done.returncode, err[-TAIL_LINES:])
    return done.stdout


def selected_streams(tap, streams=None, env=None, root=None):
    """The streams alto would extract from ``tap``: dicts with ``stream``,
    ``key_properties``, ``replication_method``, ``replication_key`` and
    ``fields``. A stream the tap does not have fails, listing those it has."""
    args = _prefix(env, root)
    args = args[:1] + ["--json"] + args[1:] + ["extract", tap, "--streams"]
    out = _call(args + _select_args(streams or []), "alto extract %s --streams" % tap)
    return json.loads(out)["streams"]


def hints(info, options=None):
    """dlt hints for a stream: its key properties as the primary key, and
    ``merge`` for an incremental stream with keys, else ``append``; then
    ``options`` (any ``apply_hints`` argument) over them."""
    keys = list(info.get("key_properties") or [])
    incremental = info.get("replication_method") in ("INCREMENTAL", "LOG_BASED")
    out = {"write_disposition": "merge" if incremental and keys else "append"}
    if keys:
        out["primary_key"] = keys
    out.update(options or {})
    return out


def _run_name(pipeline_name):
    # alto's run names become file names: letters, digits, `-`, `_`, `.`.
    return "dlt_" + re.sub(r"[^A-Za-z0-9_.-]", "_", pipeline_name)


class _Stderr(threading.Thread):
    """Passes alto's stderr on as it comes, keeping the last lines."""

    def __init__(self, pipe):
        super().__init__(daemon=True)
        self.pipe = pipe
        self.tail = collections.deque(maxlen=TAIL_LINES)

    def run(self):
        for raw in iter(self.pipe.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.tail.append(line)
            sys.stderr.write(line + "\n")
        self.pipe.close()


def _messages(prefix, tap, streams):
    """Runs ``alto extract`` from the source state's Singer state; yields
    ``{"stream", "records"}`` batches in the tap's order, keeping each STATE
    in the source state once the records before it are yielded."""
    state = dlt.current.source_state()
    name = _run_name(dlt.current.pipeline().pipeline_name)
    with tempfile.TemporaryDirectory(prefix="alto-dlt-") as tmp:
        args = prefix + ["extract", tap, "--name", name] + _select_args(streams)
        if state.get("singer_state"):
            path = os.path.join(tmp, "state.json")
            with open(path, "w") as f:
                json.dump(state["singer_state"], f)
            args += ["--state", path]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        err = _Stderr(proc.stderr)
        err.start()
        latest = None
        try:
            stream, batch = None, []
            for raw in proc.stdout:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue  # not a Singer message: alto logged nothing of it, a target would skip it too
                if not isinstance(msg, dict):
                    continue
                kind = msg.get("type")
                if kind == "RECORD":
                    s = msg.get("stream")
                    if s != stream or len(batch) >= BATCH:
                        if batch:
                            yield {"stream": stream, "records": batch}
                        stream, batch = s, []
                    batch.append(msg.get("record"))
                elif kind == "STATE":
                    if batch:
                        yield {"stream": stream, "records": batch}
                        stream, batch = None, []
                    latest = msg.get("value")
                    state["singer_state"] = latest
            if batch:
                yield {"stream": stream, "records": batch}
            code = proc.wait()
            err.join()
        finally:
            # Stopped early (dlt closed the generator, or an error): SIGTERM
            # lets alto stop the tap and release its lock, as on Ctrl-C.
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            proc.stdout.close()
        if code != 0:
            raise _failure("alto extract %s" % tap, code, list(err.tail))
        if latest is not None:
            path = os.path.join(tmp, "mirror.json")
            with open(path, "w") as f:
                json.dump(latest, f)
            _call(
                prefix + ["state", "set", "%s:%s" % (tap, name), path],
                "mirroring the state to alto (alto state set %s:%s)" % (tap, name),
            )


def _pick(stream):
    def pick(batch):
        if batch["stream"] == stream:
            yield batch["records"]

    pick.__name__ = stream
    return pick


def singer(tap, streams=None, env=None, resource_options=None, root=None):
    """A dlt source of the Singer tap ``tap`` as alto's config defines it.

    ``streams``: stream names to extract instead of the tap's ``select`` rules
    (its ``~`` hash rules still apply). ``env``: alto's environment (else
    ALTO_ENV, else ``dev``). ``resource_options``: per stream, ``apply_hints``
    arguments over the defaults (``{"users": {"write_disposition": "replace"}}``).
    ``root``: the alto project's directory (else found from the current one).
    Unknown streams fail here, before anything runs."""
    prefix = _prefix(env, root)
    streams = list(streams) if streams is not None else []
    infos = selected_streams(tap, streams, env, root)
    options = dict(resource_options or {})
    names = [i["stream"] for i in infos]
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise ValueError(
            "resource_options name streams %s does not extract: %s (it extracts: %s)"
            % (tap, ", ".join(unknown), ", ".join(names))
        )

    @dlt.source(name=re.sub(r"\W", "_", tap))
    def source():
        messages = dlt.resource(
            _messages(prefix, tap, streams), name="_%s_singer" % re.sub(r"\W", "_", tap),
            selected=False,
        )
        resources = []
        for info in infos:
            r = dlt.transformer(_pick(info["stream"]), data_from=messages, name=info["stream"])
            r.apply_hints(**hints(info, options.get(info["stream"])))
            resources.append(r)
        return resources

    return source()
