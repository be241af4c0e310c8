import torch
import torch.nn as nn
import torch.nn.functional as F

from lib.engine.evaluate import evaluate


class Batches(list):
    """A list of (images, targets) batches standing in for a DataLoader."""


def make_batches(seed=0, n_batches=3, batch=5, classes=7):
    g = torch.Generator().manual_seed(seed)
    return Batches((torch.randn(batch, 3, 8, 8, generator=g), torch.randint(0, classes, (batch,), generator=g))
                   for _ in range(n_batches))


def tiny_model(classes=7):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, classes))


def test_metrics_match_a_direct_computation():
    model, batches = tiny_model(), make_batches()
    model.train()
    result = evaluate(model, batches, torch.device('cpu'))
    assert model.training, 'evaluate must restore the training mode'
    model.eval()
    images = torch.cat([b[0] for b in batches])
    target = torch.cat([b[1] for b in batches])
    with torch.no_grad():
        logits = model(images)
    top5 = logits.topk(5, dim=1).indices
    assert result['images'] == 15
    assert abs(result['loss'] - F.cross_entropy(logits, target).item()) < 1e-5
    assert abs(result['prec1'] - 100 * (top5[:, 0] == target).float().mean().item()) < 1e-4
    assert abs(result['prec5'] - 100 * (top5 == target[:, None]).any(1).float().mean().item()) < 1e-4
    assert result['img_per_sec'] > 0


def test_tta_averages_with_the_mirrored_image():
    model, batches = tiny_model(), make_batches(1)
    model.eval()
    images = torch.cat([b[0] for b in batches])
    target = torch.cat([b[1] for b in batches])
    with torch.no_grad():
        probs = (model(images).softmax(-1) + model(images.flip(3)).softmax(-1)) / 2
    result = evaluate(model, batches, torch.device('cpu'), tta=1)
    assert abs(result['loss'] - F.nll_loss(probs.log(), target).item()) < 1e-5


def test_forward_override_and_channels_last_and_bf16():
    model, batches = tiny_model(), make_batches(2)
    calls = []

    def forward(x):
        calls.append(x.is_contiguous(memory_format=torch.channels_last))
        return model(x)

    result = evaluate(model, batches, torch.device('cpu'), forward=forward, channels_last=True, amp=True)
    assert calls == [True] * 3
    assert result['images'] == 15 and 0 <= result['prec1'] <= 100


def test_tta_averages_the_probabilities_of_the_image_and_its_mirror():
    model, batches = tiny_model(), make_batches()
    plain = evaluate(model, batches, torch.device('cpu'))
    tta = evaluate(model, batches, torch.device('cpu'), tta=1)
    model.eval()
    images = torch.cat([b[0] for b in batches])
    target = torch.cat([b[1] for b in batches])
    with torch.no_grad():
        probs = (model(images).softmax(-1) + model(images.flip(3)).softmax(-1)) / 2
    assert abs(tta['loss'] - F.nll_loss(probs.log(), target).item()) < 1e-5
    assert abs(tta['prec1'] - 100 * (probs.argmax(1) == target).float().mean().item()) < 1e-4
    assert abs(tta['loss'] - plain['loss']) > 1e-3  # this network's output depends on the mirroring

