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
    # Conv nets go through ONNX, which needs the input shape.
    with pytest.raises(ValueError, match=r"input_shape=\(channels, height, width\)"):
        snnsim.from_torch(torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU()))
    with pytest.raises(ValueError, match="Sigmoid"):
        snnsim.from_torch(torch.nn.Sequential(torch.nn.Linear(4, 2, bias=False), torch.nn.Sigmoid()), input_shape=4)
    with pytest.raises(ValueError, match="MaxPool"):
        snnsim.from_torch(torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2)),
                          input_shape=(1, 8, 8))


def test_from_torch_keeps_linear_biases():
    torch.manual_seed(0)
    seq = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    m = snnsim.from_torch(seq)
    np.testing.assert_array_equal(m.biases[0], seq[0].bias.detach().numpy())
    np.testing.assert_array_equal(m.biases[1], seq[2].bias.detach().numpy())
    # A bare module (not a Sequential) goes through ONNX: the same weights and biases.
    lin = torch.nn.Linear(4, 2)
    m = snnsim.from_torch(lin, input_shape=4)
    np.testing.assert_allclose(m.weights[0], lin.weight.detach().numpy(), rtol=0, atol=1e-7)
    np.testing.assert_allclose(m.biases[0], lin.bias.detach().numpy(), rtol=0, atol=1e-7)
    assert m.output_relu is False


def convnet():
    """Conv + BatchNorm + AvgPool with non-trivial BatchNorm statistics (what folding must get right)."""
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 5), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.AvgPool2d(2),
                              torch.nn.Conv2d(4, 6, 3, padding=1), torch.nn.ReLU(), torch.nn.AvgPool2d(2),
                              torch.nn.Flatten(), torch.nn.Linear(6 * 6 * 6, 10))
    with torch.no_grad():
        bn = net[1]
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.1, 0.1)
    return net


def test_from_torch_conv_batchnorm_avgpool_classifies_as_torch():
    net = convnet()
    net.train()
    m = snnsim.from_torch(net, input_shape=(1, 28, 28))
    assert net.training, "from_torch must restore the module's mode"
    assert [l["kind"] for l in m.layers] == ["conv", "avgpool", "conv", "avgpool", "flatten", "dense"]
    assert m.input_shape == [1, 28, 28]
    assert m.layer_sizes == [784, 4 * 24 * 24, 4 * 12 * 12, 6 * 12 * 12, 6 * 6 * 6, 10]
    d = snnsim.load_dataset("mnist10k")
    x = d["test_images"][:300]
    y = d["test_labels"][:300]
    net.eval()
    with torch.no_grad():
        out = net(torch.from_numpy(x.astype(np.float32) / 255).reshape(-1, 1, 28, 28)).numpy()
    torch_pred = out.argmax(1)
    # Predictions can differ only where torch's two largest logits are within float rounding.
    top2 = np.sort(out, 1)[:, -2:]
    near_ties = int((top2[:, 1] - top2[:, 0] < 1e-4).sum())
    acc = m.evaluate(x, y)
    assert abs(acc - (torch_pred == y).mean()) <= near_ties / 300 + 1e-12


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
