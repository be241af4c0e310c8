"""lib/models/paths.py: the path type's key, and the one uniform random draw (the search's 'even' sampler draws it)."""
import collections

import pytest
import torch

from lib.models.paths import key_path, normalize_path, path_key, random_path, seeded_generator, split_stages
from lib.search.sampler import PathSampler

LAYERS = (1, 2, 3)


def test_a_key_names_its_path():
    path = ((3,), (1, 5), (0, 2, 4))
    assert path_key(path) == '3-1.5-0.2.4' and key_path('3-1.5-0.2.4') == path
    assert path_key([[3], [1, 5], [0, 2, 4]]) == path_key(path)


def test_normalize_path_refuses_what_is_not_a_path():
    assert normalize_path([[1], [2, 3]]) == ((1,), (2, 3))
    with pytest.raises(ValueError, match='per-stage op-index sequences'):
        normalize_path([1, 2])
    with pytest.raises(ValueError, match='>= 0'):
        normalize_path([[1], [-1, 3]])


def test_split_stages_gives_each_stage_its_layers():
    assert split_stages([5, 4, 3, 2, 1, 0], LAYERS) == ((5,), (4, 3), (2, 1, 0))


def test_a_seed_gives_the_same_paths_and_leaves_the_global_generator_alone():
    torch.manual_seed(0)
    before = torch.get_rng_state()
    first, second = seeded_generator(7), seeded_generator(7)
    drawn = [random_path(LAYERS, 6, first) for _ in range(5)]
    assert drawn == [random_path(LAYERS, 6, second) for _ in range(5)]
    assert len(set(drawn)) > 1 and all(tuple(map(len, p)) == LAYERS for p in drawn)
    assert torch.equal(torch.get_rng_state(), before)


def test_the_searchs_even_sampler_draws_the_same_paths():
    sampler = PathSampler(LAYERS, 6, how_to_prob='even', seed=11)
    generator = seeded_generator(11)
    assert [sampler.sample() for _ in range(20)] == [random_path(LAYERS, 6, generator) for _ in range(20)]


def test_every_op_of_every_layer_is_drawn_about_evenly():
    generator = seeded_generator(3)
    counts = collections.Counter()
    for _ in range(3000):
        path = random_path((2,), 3, generator)
        counts.update((layer, op) for layer, op in enumerate(path[0]))
    assert set(counts) == {(layer, op) for layer in range(2) for op in range(3)}
    assert all(900 <= n <= 1100 for n in counts.values())  # 1000 expected, standard deviation 26
