"""Runs exported policy step graphs with onnxruntime and compares them with Rust recordings.

Usage: onnx_check.py CASES_JSON

CASES_JSON lists the cases written by tests/onnx_runtime.rs: for each, a directory holding
policy.onnx and raw little-endian float32 arrays (obs, episode_start, action_mask, logits,
value, memory0_i, next_memory_i). Each model is checked with onnx.checker, then stepped
through the recorded episode with onnxruntime: the recorded memory is fed only at the first
step, afterwards the model's own next_memory outputs. Logits, values and every memory tensor
must match within 1e-4 (absolute). Prints the largest error of each output per case; exits
with status 1 if any is above the tolerance.
"""

import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort

TOLERANCE = 1e-4


def load(case, name, shape):
    path = os.path.join(case["dir"], name + ".f32")
    return np.fromfile(path, dtype="<f4").reshape(shape)


def check_case(case):
    model_path = os.path.join(case["dir"], "policy.onnx")
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)

    t_steps, batch = case["steps"], case["batch"]
    shapes = [tuple(s) for s in case["memory_shapes"]]
    obs = load(case, "obs", (t_steps, batch, case["obs_dim"]))
    starts = load(case, "episode_start", (t_steps, batch))
    logits = load(case, "logits", (t_steps, batch, case["param_width"]))
    values = load(case, "value", (t_steps, batch))
    mask_width = case["mask_width"]
    masks = None
    if mask_width is not None:
        masks = load(case, "action_mask", (t_steps, batch, mask_width)) > 0.5
    memory = [load(case, f"memory0_{i}", s) for i, s in enumerate(shapes)]
    next_memory = [load(case, f"next_memory_{i}", (t_steps,) + s) for i, s in enumerate(shapes)]

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    input_names = [i.name for i in session.get_inputs()]
    want_inputs = ["obs", "episode_start"] + [f"memory_{i}" for i in range(len(shapes))]
    if mask_width is not None:
        want_inputs.append("action_mask")
    if input_names != want_inputs:
        raise AssertionError(f"inputs {input_names}, expected {want_inputs}")
    output_names = [o.name for o in session.get_outputs()]
    want_outputs = ["logits", "value"] + [f"next_memory_{i}" for i in range(len(shapes))]
    if output_names != want_outputs:
        raise AssertionError(f"outputs {output_names}, expected {want_outputs}")

    errors = {name: 0.0 for name in want_outputs}
    for t in range(t_steps):
        feed = {"obs": obs[t], "episode_start": starts[t]}
        for i, m in enumerate(memory):
            feed[f"memory_{i}"] = m
        if masks is not None:
            feed["action_mask"] = masks[t]
        out = session.run(None, feed)
        expected = [logits[t], values[t]] + [m[t] for m in next_memory]
        for name, got, want in zip(output_names, out, expected):
            if got.shape != want.shape:
                raise AssertionError(f"{name} at step {t}: shape {got.shape}, expected {want.shape}")
            errors[name] = max(errors[name], float(np.max(np.abs(got - want))))
        memory = out[2:]
    return errors


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    print(f"onnxruntime {ort.__version__}, onnx {onnx.__version__}")
    failed = []
    for case in cases:
        errors = check_case(case)
        worst = max(errors.values())
        memory_error = max((e for n, e in errors.items() if n.startswith("next_memory")), default=0.0)
        status = "ok" if worst <= TOLERANCE else "FAIL"
        print(
            f"{case['name']:42s} {status}: max |error| logits {errors['logits']:.2e}, "
            f"value {errors['value']:.2e}, memory {memory_error:.2e} "
            f"({len(errors) - 2} tensors)"
        )
        if worst > TOLERANCE:
            failed.append((case["name"], errors))
    for name, errors in failed:
        print(f"{name}: " + ", ".join(f"{k} {v:.3e}" for k, v in errors.items()))
    if failed:
        print(f"{len(failed)} of {len(cases)} cases differ by more than {TOLERANCE}")
        sys.exit(1)
    print(f"all {len(cases)} cases within {TOLERANCE}")


if __name__ == "__main__":
    main()
