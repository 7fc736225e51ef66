import io
import json
import logging
import unittest
from unittest import mock

from taskmanager_worker import logs


class LogsTests(unittest.TestCase):
    def setUp(self):
        root = logging.getLogger()
        self.addCleanup(setattr, root, "handlers", root.handlers[:])
        self.addCleanup(root.setLevel, root.level)

    def test_each_record_is_one_json_line_with_task_fields(self):
        stream = io.StringIO()
        with mock.patch("sys.stderr", stream):
            logs.setup("info")
        logging.getLogger("x").info("task %s", "done", extra=logs.task_fields({"task_id": "t1", "attempt": 2}))
        logging.getLogger("x").debug("not shown at info")
        lines = stream.getvalue().splitlines()
        self.assertEqual(len(lines), 1)
        line = json.loads(lines[0])
        self.assertEqual((line["level"], line["msg"], line["task_id"], line["attempt"]), ("info", "task done", "t1", 2))
        self.assertRegex(line["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


if __name__ == "__main__":
    unittest.main()
