"""alto.dlt end to end: the fixture tap (fixtures/plugins/tap-fixture) through
alto into DuckDB with dlt. Run by tests/dlt.rs in target/dlt-venv (made by
scripts/dlt-venv), which sets ALTO_TEST_FIXTURES (the fixture plugins),
ALTO_CACHE_DIR (a local store that can build) and, so that `cargo test` tests
this checkout, ALTO_BIN (the binary cargo built) and PYTHONPATH (python/).
Each test is a project of its own in a temporary directory, HOME included."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import unittest

import dlt
import duckdb
from dlt.pipeline.exceptions import PipelineStepFailed

import alto.dlt
from alto.dlt import AltoError, singer

CONFIG = """default:
  project_name: dlt-test
  taps:
    tap-fixture:
      pip_url: ./plugins/tap-fixture
      capabilities: [catalog, state, discover]
      select: ["*.*", "~users.email"]
      config:
        rows: 5
{extra}"""


class Project:
    def __init__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="alto-dlt-test-")
        self.dir = self.tmp.name
        shutil.copytree(os.environ["ALTO_TEST_FIXTURES"], os.path.join(self.dir, "plugins"))
        os.makedirs(os.path.join(self.dir, "home"))
        self.write()

    def write(self, extra=""):
        with open(os.path.join(self.dir, "alto.yaml"), "w") as f:
            f.write(CONFIG.format(extra=extra))

    def pipeline(self, name="shop"):
        return dlt.pipeline(
            pipeline_name=name,
            destination=dlt.destinations.duckdb(os.path.join(self.dir, "shop.duckdb")),
            dataset_name="raw",
            pipelines_dir=os.path.join(self.dir, "dlt"),
        )

    def sql(self, query):
        with duckdb.connect(os.path.join(self.dir, "shop.duckdb"), read_only=True) as c:
            return c.sql(query).fetchall()

    def alto(self, *args):
        done = subprocess.run([alto.dlt.find_alto(), "--root", self.dir] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
        return done.stdout.decode()


def singer_state(pipeline):
    return pipeline.state.get("sources", {}).get("tap_fixture", {}).get("singer_state")


class AltoDltTest(unittest.TestCase):
    def setUp(self):
        self.project = Project()
        self.addCleanup(self.project.tmp.cleanup)
        # alto's remote (~/.alto) and dlt's home are the project's own.
        env = {"HOME": os.path.join(self.project.dir, "home"), "RUNTIME__DLTHUB_TELEMETRY": "false"}
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        self.addCleanup(lambda: [os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
                                 for k, v in old.items()])

    def run_source(self, pipeline, **kw):
        return pipeline.run(singer("tap-fixture", root=self.project.dir, **kw))

    def test_loads_one_table_per_stream_hashed_then_only_new_rows(self):
        p = self.project.pipeline()
        self.run_source(p)
        self.assertEqual(self.project.sql("select id from raw.users order by id"), [(i,) for i in range(1, 6)])
        self.assertEqual(self.project.sql("select count(*) from raw.orders"), [(5,)])
        emails = [e for (e,) in self.project.sql("select email from raw.users order by id")]
        self.assertEqual(emails, [hashlib.md5(("user%d@example.com" % i).encode()).hexdigest() for i in range(1, 6)])
        # Schema hints: key properties, merge for an incremental stream with keys.
        users = p.default_schema.get_table("users")
        self.assertEqual(users["write_disposition"], "merge")
        self.assertTrue(users["columns"]["id"].get("primary_key"))
        self.assertEqual(singer_state(p)["bookmarks"]["users"]["updated_at"], 5)

        # The next run resumes from the state dlt committed: only new rows.
        second = self.run_source(p)
        self.assertEqual(self.project.sql("select id from raw.users order by id"), [(i,) for i in range(1, 11)])
        new_load = second.loads_ids[-1]
        self.assertEqual(self.project.sql("select count(*) from raw.orders where _dlt_load_id = '%s'" % new_load), [(5,)])
        self.assertEqual(self.project.sql("select count(*) from raw.orders"), [(10,)])

        # The state is mirrored where alto's state commands see it.
        mirrored = json.loads(self.project.alto("state", "show", "tap-fixture:dlt_shop"))
        self.assertEqual(mirrored, singer_state(p))
        self.assertEqual(mirrored["bookmarks"]["orders"]["updated_at"], 10)
        listed = json.loads(self.project.alto("--json", "state", "list"))["states"]
        self.assertIn({"name": "tap-fixture:dlt_shop", "kind": "dlt"},
                      [{"name": s["name"], "kind": s["kind"]} for s in listed])

    def test_a_failing_tap_fails_the_run_and_leaves_the_state(self):
        p = self.project.pipeline()
        self.run_source(p)
        before = singer_state(p)
        mirrored = self.project.alto("state", "show", "tap-fixture:dlt_shop")
        # The tap fails after 2 of its new records.
        self.project.write("        fail_after: 2\n")
        with self.assertRaises(PipelineStepFailed) as failed:
            self.run_source(p)
        self.assertIn("tap-fixture: failing as configured", str(failed.exception))
        self.assertEqual(singer_state(p), before)
        self.assertEqual(singer_state(self.project.pipeline()), before, "as dlt restores it")
        self.assertEqual(self.project.alto("state", "show", "tap-fixture:dlt_shop"), mirrored)
        self.assertEqual(self.project.sql("select count(*) from raw.users"), [(5,)])

        # Fixed, the next run loads what the failed one did not, once.
        self.project.write()
        p = self.project.pipeline()
        self.run_source(p)
        self.assertEqual(self.project.sql("select id from raw.users order by id"), [(i,) for i in range(1, 11)])
        self.assertEqual(singer_state(p)["bookmarks"]["users"]["updated_at"], 10)

    def test_unknown_streams_fail_before_anything_runs(self):
        with self.assertRaises(AltoError) as failed:
            singer("tap-fixture", streams=["users", "nope"], root=self.project.dir)
        self.assertIn("`nope`", str(failed.exception))
        self.assertIn("users, orders", str(failed.exception))
        logs = os.path.join(self.project.dir, ".alto", "logs", "dev")
        self.assertEqual([f for f in os.listdir(logs) if "-to-" in f] if os.path.isdir(logs) else [], [])
        with self.assertRaises(ValueError) as bad:
            singer("tap-fixture", streams=["users"], resource_options={"orders": {}}, root=self.project.dir)
        self.assertIn("orders", str(bad.exception))

    def test_streams_and_resource_options(self):
        p = self.project.pipeline("picked")
        self.run_source(p, streams=["users"], resource_options={"users": {"write_disposition": "replace"}})
        self.assertEqual(p.default_schema.get_table("users")["write_disposition"], "replace")
        self.assertNotIn("orders", p.default_schema.tables)
        self.assertEqual(self.project.sql("select count(*) from raw.users"), [(5,)])

    def test_the_wheel_binary_is_found_beside_the_interpreter(self):
        beside = os.path.join(sysconfig.get_path("scripts"), "alto")
        if not os.path.exists(beside):
            self.skipTest("alto is not installed in this interpreter's environment")
        saved = os.environ.pop("ALTO_BIN", None)
        try:
            self.assertEqual(alto.dlt.find_alto(), beside)
        finally:
            if saved is not None:
                os.environ["ALTO_BIN"] = saved


if __name__ == "__main__":
    unittest.main(verbosity=2)
