"""The Python binding end to end: compile, run and stats on two zoo models
at reduced size, weights in and out, checkpoint import against PyTorch's
goldens, a sweep (explore) with a broken variant, errors as exceptions. Runs with the build's library:

    MIXC_LIBRARY=build/libmixc.so PYTHONPATH=python python3 -m unittest discover -s python/tests
"""
import os
import tempfile
import unittest

import numpy as np

import mixc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.path.join(ROOT, "models")
GOLDEN = os.path.join(ROOT, "tests", "golden")

REDUCED = {
    "mamba-block.json": {"batch": 1, "input.length": 12, "stages[0].width": 8},
    "tsm2-etth1.json": {"batch": 1, "input.variates": 3, "input.lookback": 64, "head.horizon": 8,
                        "stages[0].width": 8},
}


def read_safetensors(path):
    """{name: array} of a safetensors file (F32 / I32 / I64), without the safetensors package."""
    import json
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        blob = f.read()
    kinds = {"F32": np.float32, "I32": np.int32, "I64": np.int64}
    return {k: np.frombuffer(blob[v["data_offsets"][0]:v["data_offsets"][1]], kinds[v["dtype"]]).reshape(v["shape"])
            for k, v in header.items() if k != "__metadata__"}


def rel_error(got, want):
    return float(np.abs(got - want).max() / max(1.0, np.abs(want).max()))


class ZooModels(unittest.TestCase):
    def test_compile_run_stats(self):
        for spec, sets in REDUCED.items():
            with self.subTest(spec=spec):
                model = mixc.compile(os.path.join(MODELS, spec), device="ref", overrides=sets)
                rng = np.random.default_rng(0)
                inputs = {n: rng.uniform(-1, 1, s.shape).astype(np.float32) for n, s in model.inputs.items()}
                out = model(**inputs)
                self.assertEqual(set(out), set(model.outputs))
                for name, y in out.items():
                    self.assertEqual(y.shape, model.outputs[name].shape)
                    self.assertTrue(np.isfinite(y).all())
                again = model(**inputs)  # deterministic
                for name in out:
                    np.testing.assert_array_equal(out[name], again[name])
                stats = model.stats()
                self.assertGreater(stats["total"]["params"], 0)
                self.assertAlmostEqual(sum(l["params"] for l in stats["layers"]), stats["total"]["params"])

    def test_weights_round_trip(self):
        spec = os.path.join(MODELS, "mamba-block.json")
        sets = REDUCED["mamba-block.json"]
        a = mixc.compile(spec, device="ref", overrides=sets, seed=1)
        b = mixc.compile(spec, device="ref", overrides=sets, seed=2)
        x = np.random.default_rng(1).uniform(-1, 1, a.inputs["tokens"].shape).astype(np.float32)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "w.safetensors")
            a.save_weights(path)
            self.assertFalse(np.array_equal(a(tokens=x)["hidden"], b(tokens=x)["hidden"]))
            b.load_weights(path)
            np.testing.assert_array_equal(a(tokens=x)["hidden"], b(tokens=x)["hidden"])
            b.load_weights(read_safetensors(path))  # a state_dict of arrays
            np.testing.assert_array_equal(a(tokens=x)["hidden"], b(tokens=x)["hidden"])


class Checkpoints(unittest.TestCase):
    def check_case(self, case, source):
        model = mixc.compile(os.path.join(GOLDEN, case + ".json"), device="ref")
        model.load_weights(os.path.join(GOLDEN, case + ".state.safetensors"), source=source)
        out = model(**read_safetensors(os.path.join(GOLDEN, case + ".inputs.safetensors")))
        for name, want in read_safetensors(os.path.join(GOLDEN, case + ".outputs.safetensors")).items():
            self.assertLessEqual(rel_error(out[name], want), 1e-4, name)

    def test_transformers(self):
        self.check_case("hf_mamba_model", "transformers")
        self.check_case("hf_mamba_causal_lm", "transformers")

    def test_mamba_ssm(self):
        self.check_case("mamba_ssm_block", "mamba_ssm")

    def test_import_weights_from_dict(self):
        state = read_safetensors(os.path.join(GOLDEN, "mamba_ssm_block.state.safetensors"))
        del state["mixer.D"]
        with tempfile.TemporaryDirectory() as tmp, self.assertRaises(mixc.MixcError) as e:
            mixc.import_weights(os.path.join(GOLDEN, "mamba_ssm_block.json"), state,
                                os.path.join(tmp, "w.safetensors"), source="mamba_ssm")
        self.assertIn("no tensor for param 'stages.0.blocks.0.token_mixer.scans.0.D'", str(e.exception))


class Errors(unittest.TestCase):
    def setUp(self):
        self.model = mixc.compile(os.path.join(MODELS, "mamba-block.json"), device="ref",
                                  overrides=REDUCED["mamba-block.json"])
        self.shape = self.model.inputs["tokens"].shape

    def test_bad_spec(self):
        with self.assertRaises(mixc.MixcError) as e:
            mixc.compile(os.path.join(MODELS, "mamba-block.json"), overrides={"stages[0].token_mixer.d_state": 0})
        self.assertIn("stages[0].token_mixer.d_state: expected an integer >= 1", str(e.exception))

    def test_missing_file(self):
        with self.assertRaises(mixc.MixcError) as e:
            mixc.compile("no/such/spec.json")
        self.assertIn("cannot open", str(e.exception))

    def test_inputs(self):
        with self.assertRaises(mixc.MixcError) as e:
            self.model(tokenz=np.zeros(self.shape, np.float32))
        self.assertIn("missing tokens; unknown tokenz", str(e.exception))
        with self.assertRaises(mixc.MixcError) as e:
            self.model(tokens=np.zeros((1, 3), np.float32))
        self.assertIn("tokens", str(e.exception))
        with self.assertRaises(mixc.MixcError) as e:
            self.model(tokens=np.zeros(self.shape, np.float64))
        self.assertIn("astype(np.float32)", str(e.exception))

    def test_bad_weights(self):
        with self.assertRaises(mixc.MixcError) as e:
            self.model.load_weights({"bogus": np.zeros(3, np.float32)})
        self.assertIn("is not in the file", str(e.exception))


class Explore(unittest.TestCase):
    def test_sweep(self):
        spec = os.path.join(MODELS, "mamba-block.json")
        rows = mixc.explore(spec, {"stages[0].token_mixer.d_state": [4, 8, 0]}, overrides=REDUCED["mamba-block.json"],
                            device="ref", runs=1, warmup=0)
        self.assertEqual([r["point"] for r in rows], [0, 1, 2])
        self.assertEqual([r["values"]["stages[0].token_mixer.d_state"] for r in rows], ["4", "8", "0"])
        good, bigger, broken = rows
        for r in (good, bigger):
            self.assertIsNone(r["error"])
            self.assertGreater(r["kernels"], 0)
            self.assertGreater(r["estimate_ms"], 0)
            self.assertGreaterEqual(r["host_ms"], 0)
        # d_state 8 has more A_log, x_proj and FLOPs than d_state 4, by Mamba's arithmetic:
        # A_log grows by E * 4 and x_proj's output by 2 * 4 rows of E = 2 * width inputs
        E = 2 * REDUCED["mamba-block.json"]["stages[0].width"]
        self.assertEqual(bigger["params"] - good["params"], E * 4 + 2 * 4 * E)
        self.assertGreater(bigger["flops"], good["flops"])
        self.assertIn("d_state", broken["error"])
        self.assertIsNone(broken["params"])
        self.assertIn("measured on ref", rows.columns["host_ms"])
        self.assertTrue(rows.columns["estimate_ms"].startswith("estimated for") and "h100" in rows.columns["estimate_ms"])

    def test_bad_sweep(self):
        with self.assertRaises(mixc.MixcError) as e:
            mixc.explore(os.path.join(MODELS, "mamba-block.json"), {"batch": [1]}, target="no-such-gpu")
        self.assertIn("no-such-gpu", str(e.exception))


@unittest.skipUnless(mixc._torch() is not None, "torch is not installed")
class Torch(unittest.TestCase):
    def test_tensors_in_and_out(self):
        import torch
        model = mixc.compile(os.path.join(MODELS, "mamba-block.json"), device="ref",
                             overrides=REDUCED["mamba-block.json"])
        x = torch.rand(model.inputs["tokens"].shape)
        out = model(tokens=x)["hidden"]
        self.assertIsInstance(out, torch.Tensor)
        np.testing.assert_array_equal(out.numpy(), model(tokens=x.numpy())["hidden"])


if __name__ == "__main__":
    unittest.main()
