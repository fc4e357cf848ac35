import numpy as np
import pytest
import torch

from trainables.knn import knn_accuracy


def brute_force_knn(train_f, train_y, test_f, test_y, k, T, C):
    train_f = train_f / np.linalg.norm(train_f, axis=1, keepdims=True)
    test_f = test_f / np.linalg.norm(test_f, axis=1, keepdims=True)
    top1 = top5 = 0
    for x, y in zip(test_f, test_y):
        sims = train_f @ x
        nn = np.argsort(-sims, kind="stable")[:k]
        votes = np.zeros(C)
        for j in nn:
            votes[train_y[j]] += np.exp(sims[j] / T)
        ranked = np.argsort(-votes, kind="stable")
        top1 += ranked[0] == y
        top5 += y in ranked[:5]
    return 100 * top1 / len(test_y), 100 * top5 / len(test_y)


@pytest.mark.parametrize("n_test,chunk_elems", [(7, 2**24), (250, 500)])  # < 100 images; tiny chunks
def test_knn_matches_brute_force(n_test, chunk_elems):
    rng = np.random.default_rng(0)
    C, n_train, d = 12, 300, 16
    centers = rng.normal(size=(C, d))
    train_y, test_y = rng.integers(0, C, n_train), rng.integers(0, C, n_test)
    train_f = centers[train_y] + rng.normal(scale=1.5, size=(n_train, d))
    test_f = centers[test_y] + rng.normal(scale=1.5, size=(n_test, d))
    want = brute_force_knn(train_f, train_y, test_f, test_y, k=20, T=0.07, C=C)
    got = knn_accuracy(torch.tensor(train_f), torch.tensor(train_y), torch.tensor(test_f),
                       torch.tensor(test_y), k=20, temperature=0.07, max_chunk_elems=chunk_elems)
    assert got == pytest.approx(want)
    assert 0 < got[0] < 100 and got[1] >= got[0]


def test_knn_k_larger_than_memory_and_few_classes():
    train = torch.tensor([[1.0, 0], [0, 1.0], [0.9, 0.1]])
    top1, top5 = knn_accuracy(train, torch.tensor([0, 1, 0]), torch.tensor([[1.0, 0.05], [0.0, 1.0]]),
                              torch.tensor([0, 1]), k=200)
    assert top1 == 50.0 or top1 == 100.0
    assert top5 == 100.0  # only 2 classes: both are within the top 5


def test_in_memory_features_match_the_per_image_eval_transform():
    from trainables.data import in_memory, make_synthetic, with_transform
    from trainables.dino.augment import eval_transform
    from trainables.knn import extract_features, extract_features_in_memory

    train, _ = make_synthetic(n_train=12, size=16)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    for size in (16, 12):  # as stored, and resized + center-cropped
        want, y = extract_features(model, with_transform(train, eval_transform(size)), torch.device("cpu"))
        got, y2 = extract_features_in_memory(model, *in_memory(train), size, torch.device("cpu"),
                                             batch_size=5)
        assert got.dtype == torch.float16 and torch.equal(y, y2)
        torch.testing.assert_close(got.float(), want.float(), rtol=0, atol=0.02 if size == 12 else 2e-3)


def test_in_memory_features_do_not_depend_on_the_batch_size():
    """The kNN evaluation batch is a speed setting (``eval_batch_size``: 256 on a CPU, 512 on a GPU):
    in batches of 7, 64 or the default, every image gets its own features, in order, the last
    partial batch included (to float rounding: oneDNN may pick other kernels for small batches)."""
    from trainables.data import in_memory, make_synthetic
    from trainables.dino.backbone import build_backbone
    from trainables.knn import eval_batch_size, extract_features_in_memory

    train, _ = make_synthetic(n_train=300, size=16)
    torch.manual_seed(0)
    model = build_backbone("test_resnet", 16, 16, 0.0).to(memory_format=torch.channels_last)
    with torch.no_grad():  # BatchNorm running statistics away from their initial values
        for _ in range(3):
            model(torch.rand(32, 3, 16, 16).contiguous(memory_format=torch.channels_last) * 3)
    images, labels = in_memory(train)
    cpu = torch.device("cpu")
    assert eval_batch_size(cpu) < len(images) and len(images) % eval_batch_size(cpu)  # 2 batches, 1 partial
    runs = [extract_features_in_memory(model, images, labels, 16, cpu, batch_size=b,
                                       memory_format=torch.channels_last) for b in (7, 64, None)]
    one_by_one = torch.cat([extract_features_in_memory(model, images[i:i + 1], labels[i:i + 1], 16, cpu,
                                                       memory_format=torch.channels_last)[0]
                            for i in (0, 150, 299)])
    for feats, y in runs:
        assert feats.shape == (len(images), model.num_features) and torch.equal(y, labels)
        torch.testing.assert_close(feats.float(), runs[0][0].float(), rtol=0, atol=1e-3)
        torch.testing.assert_close(feats[[0, 150, 299]].float(), one_by_one.float(), rtol=0, atol=1e-3)
    assert (runs[0][0][0] - runs[0][0][150]).abs().max() > 0.01  # images differ: an order check


def test_features_under_the_trainers_bf16_autocast_on_a_cpu():
    """`precision: bf16` on a CPU evaluates under CPU autocast, whose `cat` refuses fp16 tensors (the
    run ended in a traceback at its epoch-0 kNN): the batches are joined outside it."""
    from trainables.data import in_memory, make_synthetic, with_transform
    from trainables.dino.augment import eval_transform
    from trainables.knn import extract_features, extract_features_in_memory

    train, _ = make_synthetic(n_train=12, size=16)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    cpu = torch.device("cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, _ = extract_features_in_memory(model, *in_memory(train), 16, cpu, batch_size=5)
        also, _ = extract_features(model, with_transform(train, eval_transform(16)), cpu, batch_size=5)
    want, _ = extract_features_in_memory(model, *in_memory(train), 16, cpu, batch_size=5)
    assert got.shape == also.shape == want.shape == (12, 4) and got.dtype == torch.float16
    torch.testing.assert_close(got.float(), want.float(), rtol=0, atol=0.05)  # bf16 convolution


@pytest.mark.parametrize("temperature", [0.005, 1e-4, 1e-300])
def test_a_small_temperature_votes_as_the_nearest_neighbour(temperature):
    """knn_temperature is any number > 0: below 1/88.7 exp(sim / T) overflowed float32, every class a
    neighbour voted for tied at inf, and top-1 was 29 % where the nearest neighbour gets 100 %."""
    g = torch.Generator().manual_seed(0)
    train, train_y = torch.randn(400, 16, generator=g), torch.randint(0, 4, (400,), generator=g)
    test = train[:100] + 0.3 * torch.randn(100, 16, generator=g)
    nearest = knn_accuracy(train, train_y, test, train_y[:100], k=1, temperature=0.07)
    got = knn_accuracy(train, train_y, test, train_y[:100], k=20, temperature=temperature)
    assert got[0] == nearest[0] == 100.0


def test_the_vote_exponentiates_the_similarities_as_they_are_while_it_cannot_overflow():
    """The official code's weights exp(sim / T), bit for bit, at every temperature whose vote stays finite
    (the main job's kNN figures stay as they were); shifted by each image's largest below that."""
    from trainables.knn import shifted

    sim = torch.tensor([[0.9, 0.5, -0.2]])
    assert shifted(sim, 20, 0.07) is sim and shifted(sim, 20, 0.0118) is sim
    torch.testing.assert_close(shifted(sim, 20, 0.0116), torch.tensor([[0.0, -0.4, -1.1]]))
    assert torch.isinf((torch.ones(20) / 0.0116).exp().sum())  # where the shift begins: the sum overflows
    assert torch.isfinite((torch.ones(20) / 0.0118).exp().sum())
