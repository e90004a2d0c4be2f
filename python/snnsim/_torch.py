"""torch.nn modules -> snnsim Models (imported only when from_torch is called)."""

import os
import tempfile

# Read directly (weights copied from the module); anything else goes through ONNX.
_DIRECT = ("Sequential", "Linear", "ReLU", "Dropout", "Flatten", "Identity")


def needs_onnx(module):
    """True unless module is a Sequential of Linear/ReLU/Dropout/Flatten/Identity (nested Sequentials walked)."""
    import torch.nn as nn

    if not isinstance(module, nn.Sequential):
        return True
    return any(type(m).__name__ not in _DIRECT or not isinstance(m, getattr(nn, type(m).__name__))
               for m in module.modules())


def layers_of(module):
    """The layer dicts of snnsim.Model for a Sequential of Linear, ReLU, Dropout, Flatten, Identity."""
    import torch.nn as nn

    layers = []

    def walk(m, path):
        if isinstance(m, nn.Sequential):
            for name, child in m.named_children():
                walk(child, f"{path}.{name}" if path else name)
        elif isinstance(m, nn.Linear):
            bias = None if m.bias is None else m.bias.detach().cpu().numpy()
            layers.append({"kind": "dense", "weight": m.weight.detach().cpu().numpy(), "bias": bias,
                           "name": f"fc{sum(1 for l in layers if l['kind'] == 'dense') + 1}"})
        elif isinstance(m, nn.Flatten):
            layers.append({"kind": "flatten", "name": path})
        elif isinstance(m, (nn.ReLU, nn.Dropout, nn.Identity)):
            pass
        else:  # needs_onnx sends everything else to via_onnx
            raise ValueError(f"from_torch: layer '{path}' is a {type(m).__name__}")

    walk(module, "")
    return layers


def via_onnx(module, input_shape, from_onnx):
    """Exports module (in eval mode, restored afterwards) with torch.onnx.export and imports the file."""
    import torch

    if input_shape is None:
        raise ValueError(f"from_torch: a {type(module).__name__} with layers other than Linear, ReLU, Dropout, "
                         "Flatten and Identity is exported through ONNX, which needs "
                         "input_shape=(channels, height, width), e.g. (1, 28, 28)")
    shape = (int(input_shape),) if isinstance(input_shape, int) else tuple(int(s) for s in input_shape)
    try:
        device = next(module.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    was_training = module.training
    module.eval()  # BatchNorm's running statistics, Dropout off: what the ANN computes at inference
    try:
        with tempfile.TemporaryDirectory(prefix="snnsim-") as tmp:
            path = os.path.join(tmp, "model.onnx")
            with torch.no_grad():
                torch.onnx.export(module, torch.zeros((1,) + shape, device=device), path, opset_version=13,
                                  input_names=["input"], output_names=["output"])
            return from_onnx(path)
    finally:
        module.train(was_training)
