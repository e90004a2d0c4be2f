"""from_torch: runs only where torch is installed (skipped with the reason otherwise)."""
import numpy as np
import pytest

import snnsim

torch = pytest.importorskip("torch", reason="torch is not installed (Debian: python3-torch); from_torch untested")


def test_from_torch_takes_the_linear_weights():
    torch.manual_seed(0)
    seq = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 50, bias=False), torch.nn.ReLU(),
                              torch.nn.Dropout(0.5), torch.nn.Linear(50, 10, bias=False))
    m = snnsim.from_torch(seq)
    assert m.layer_sizes == [784, 50, 10]
    np.testing.assert_array_equal(m.weights[0], seq[1].weight.detach().numpy())
    np.testing.assert_array_equal(m.weights[1], seq[4].weight.detach().numpy())


def test_from_torch_rejects_what_the_engine_cannot_run():
    with pytest.raises(ValueError, match="does not simulate biases yet"):
        snnsim.from_torch(torch.nn.Sequential(torch.nn.Linear(4, 2)))
    with pytest.raises(ValueError, match="'conv' layers cannot be simulated yet"):
        snnsim.from_torch(torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU()))
    with pytest.raises(ValueError, match="is a Sigmoid"):
        snnsim.from_torch(torch.nn.Sequential(torch.nn.Linear(4, 2, bias=False), torch.nn.Sigmoid()))
    with pytest.raises(ValueError, match="Sequential"):
        snnsim.from_torch(torch.nn.Linear(4, 2, bias=False))


def test_float_tensors_simulate_like_the_bytes_they_came_from():
    # torchvision's ToTensor gives byte / 255 as float32: the same spikes as the bytes.
    torch.manual_seed(0)
    seq = torch.nn.Sequential(torch.nn.Linear(784, 30, bias=False), torch.nn.ReLU(),
                              torch.nn.Linear(30, 10, bias=False))
    with torch.no_grad():
        seq[0].weight.abs_()
    m = snnsim.from_torch(seq)
    d = snnsim.load_dataset("mnist10k")
    x = d["test_images"][:20]
    t = torch.from_numpy(x.reshape(20, -1).astype(np.float32)) / 255
    a = m.simulate(x, steps=20)
    b = m.simulate(t.numpy(), steps=20)
    np.testing.assert_array_equal(a.spike_counts, b.spike_counts)
