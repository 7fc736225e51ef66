import json
import pickle
import unittest

from taskmanager_worker import artifacts
from taskmanager_worker.backends import Artifact

PNG = Artifact("image-0.png", "image/png", b"\x89PNG...", {"width": 64, "seed": 7})
WAV = Artifact("audio.wav", "audio/wav", b"RIFF....")


class ArtifactTests(unittest.TestCase):
    def test_is_picklable_and_does_not_show_its_bytes(self):
        self.assertEqual(pickle.loads(pickle.dumps(PNG)), PNG)
        self.assertIn("<7 bytes>", repr(PNG))

    def test_bytearray_data_becomes_bytes(self):
        self.assertEqual(Artifact("a", "x/y", bytearray(b"ab")).data, b"ab")

    def test_bad_artifacts_are_refused_where_the_backend_makes_them(self):
        cases = [(".hidden", "image/png", b""), ("a b", "image/png", b""), ("a" * 101, "image/png", b""),
                 ("a", "png", b""), ("a", "image/png", "text"), ("a", "image/png", b"", {"url": "x"}),
                 ("a", "image/png", b"", [1])]
        for args in cases:
            with self.subTest(args=args), self.assertRaises((TypeError, ValueError)):
                Artifact(*args)


class EncodeFillTests(unittest.TestCase):
    def test_artifacts_anywhere_are_replaced_by_their_upload_with_their_meta(self):
        output = {"images": [PNG], "nested": {"audio": WAV, "list": [1, (2, 3)]}, "text": "ok"}
        text, found = artifacts.encode(output)
        self.assertEqual([a for _, a in found], [PNG, WAV])
        uploads = [(token, artifacts.describe(a, {"url": f"/u/{a.name}", "content_type": a.content_type,
                                                  "bytes": len(a.data)})) for token, a in found]
        self.assertEqual(json.loads(artifacts.fill(text, uploads)), {
            "images": [{"url": "/u/image-0.png", "content_type": "image/png", "bytes": 7, "width": 64, "seed": 7}],
            "nested": {"audio": {"url": "/u/audio.wav", "content_type": "audio/wav", "bytes": 8},
                       "list": [1, [2, 3]]},
            "text": "ok"})

    def test_an_output_that_spells_a_placeholder_is_left_alone(self):
        text, found = artifacts.encode({"a": PNG, "b": "@taskmanager-artifact:x:0@"})
        filled = json.loads(artifacts.fill(text, [(found[0][0], {"url": "/u"})]))
        self.assertEqual(filled, {"a": {"url": "/u"}, "b": "@taskmanager-artifact:x:0@"})

    def test_the_same_name_twice_is_refused(self):
        with self.assertRaisesRegex(ValueError, "twice"):
            artifacts.encode({"a": PNG, "b": Artifact("image-0.png", "image/png", b"")})

    def test_other_objects_and_nan_are_refused(self):
        for output in ({"a": object()}, {"a": float("nan")}, {"a": Artifact("x", "a/b", b"", {"m": object()})}):
            with self.subTest(output=output), self.assertRaises((TypeError, ValueError)):
                artifacts.encode(output)

    def test_describe_falls_back_to_what_was_sent_and_needs_a_url(self):
        self.assertEqual(artifacts.describe(WAV, {"url": "/u"}),
                         {"url": "/u", "content_type": "audio/wav", "bytes": 8})
        with self.assertRaisesRegex(ValueError, "without a url"):
            artifacts.describe(WAV, {"name": "audio.wav"})


if __name__ == "__main__":
    unittest.main()
