"""torch.nn.Sequential -> snnsim layer list (imported only when from_torch is called)."""


def layers_of(module):
    """The layer dicts of snnsim.Model for a torch.nn.Sequential (nested Sequentials are walked)."""
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
        elif isinstance(m, nn.Conv2d):
            layers.append({"kind": "conv", "name": path})
        elif isinstance(m, nn.AvgPool2d):
            layers.append({"kind": "avgpool", "name": path})
        elif isinstance(m, nn.Flatten):
            layers.append({"kind": "flatten", "name": path})
        elif isinstance(m, (nn.ReLU, nn.Dropout, nn.Identity)):
            pass
        else:
            raise ValueError(f"from_torch: layer '{path}' is a {type(m).__name__}; supported: Linear, ReLU, "
                             "Dropout, Flatten, Identity (Conv2d and AvgPool2d once the engine runs them)")

    if not isinstance(module, nn.Sequential):
        raise ValueError(f"from_torch takes a torch.nn.Sequential, not a {type(module).__name__}")
    walk(module, "")
    return layers
