"""POST /architectures/check in-process on the real app: a network's table, the checker's
refusals word for word at their layer's index, and hostile bodies answered with JSON 422.

    .venv/bin/python -m pytest tests/test_architectures.py -q
"""

import json

import pytest

from trainer.zoo import PRESETS

URL = "/architectures/check"
HEAD = ["flatten", "linear 784 10"]  # a valid MNIST ending, appended where a refusal comes earlier


def _check(client, layers, dataset="mnist"):
    return client.post(URL, json={"layers": layers, "dataset": dataset})


def test_a_valid_network_gets_its_table(client):
    r = _check(client, ["flatten", "linear 784 70", "relu", "linear 70 10"])
    assert r.status_code == 200, r.text
    assert r.json() == {
        "dataset": "mnist", "input_shape": [1, 28, 28], "params": 55_660, "activation_bytes": 4 * (70 + 70 + 10),
        "rows": [
            {"index": 1, "layer": "flatten", "canonical": "flatten", "shape": [784], "params": 0,
             "activation_bytes": 0},
            {"index": 2, "layer": "linear 784 70", "canonical": "linear 784 70", "shape": [70], "params": 54_950,
             "activation_bytes": 280},
            {"index": 3, "layer": "relu", "canonical": "relu", "shape": [70], "params": 0, "activation_bytes": 280},
            {"index": 4, "layer": "linear 70 10", "canonical": "linear 70 10", "shape": [10], "params": 710,
             "activation_bytes": 40},
        ]}


def test_a_convnet_table_and_canonical_layers(client):
    r = _check(client, ["conv 3 6 5  stride=1", "maxpool 2 stride=2", "relu", "flatten", "linear 1176 10"], "cifar10")
    assert r.status_code == 200, r.text
    table = r.json()
    assert [row["shape"] for row in table["rows"]] == [[6, 28, 28], [6, 14, 14], [6, 14, 14], [1176], [10]]
    assert [row["canonical"] for row in table["rows"]][:2] == ["conv 3 6 5", "maxpool 2"]
    assert table["params"] == 3 * 6 * 25 + 6 + 1176 * 10 + 10


@pytest.mark.parametrize("model_id", ["mnist-3fc-2bn-51k", "cifar-inception-2step", "cifar-resnet-6.6m"])
def test_presets_check_with_their_parameter_counts(client, model_id):
    preset = PRESETS[model_id]
    r = _check(client, list(preset.layers), preset.dataset)
    assert r.status_code == 200 and r.json()["params"] == preset.params


REFUSALS = [
    # (layers, dataset, index in the body's list or None for the list itself, message)
    (["flatten", "linear 787 70", "relu", "linear 70 10"], "mnist", 1,
     "layer 2 expects 787 features, gets 784"),
    (["flatten", "frobnicate 3", "linear 784 10"], "mnist", 1,
     "layer 2 is `frobnicate`, not a layer zoolab knows: use one of flatten, sigmoid, relu, linear, bn1d, "
     "bn2d, dropout, conv, convblock, maxpool, inception, resblock"),
    (["flatten", "Linear 784 10"], "mnist", 1,
     "layer 2 is `Linear`, not a layer zoolab knows: did you mean `linear`?"),
    (["flatten", "linear 784"], "mnist", 1, "layer 2 needs 2 numbers (linear IN OUT), gets 1"),
    (["flatten 2", "linear 784 10"], "mnist", 0, "layer 1 takes no numbers (flatten), gets 1"),
    (["flatten", "linear 784 ten"], "mnist", 1, "layer 2 needs a whole number for OUT (linear IN OUT), gets `ten`"),
    (["flatten", "linear 784 7.5"], "mnist", 1, "layer 2 needs a whole number for OUT (linear IN OUT), gets `7.5`"),
    (["conv 1 0 3", *HEAD], "mnist", 0,
     "layer 1 needs OUT of at least 1 (conv IN OUT K [pad=P] [stride=S]), gets 0"),
    (["conv 1 4 3 pad=-1", *HEAD], "mnist", 0,
     "layer 1 needs pad of at least 0 (conv IN OUT K [pad=P] [stride=S]), gets -1"),
    (["conv 1 4 3 dilation=2", *HEAD], "mnist", 0,
     "layer 1 has no option `dilation` (conv IN OUT K [pad=P] [stride=S])"),
    (["conv 1 4 3 pad=1 pad=2", *HEAD], "mnist", 0, "layer 1 sets pad= twice"),
    (["flatten", "linear 784 1000000", "linear 1000000 10"], "mnist", 1,
     "layer 2 has OUT 1,000,000; zoolab builds sizes up to 65,536"),
    (["flatten", "", "linear 784 10"], "mnist", 1, "layer 2 is empty"),
    (["conv 3 8 3", "flatten", "linear 5408 10"], "mnist", 0, "layer 1 expects 3 channels, gets 1"),
    (["conv 1 4 5", "maxpool 2", "conv 4 4 13", "flatten", "linear 4 10"], "mnist", 2,
     "layer 3 has a 13×13 kernel, larger than its 12×12 input"),
    (["conv 1 4 5", "maxpool 2", "conv 4 4 15 pad=1", "flatten", "linear 4 10"], "mnist", 2,
     "layer 3 has a 15×15 kernel, larger than its 12×12 input padded to 14×14"),
    (["maxpool 2 pad=2", "flatten", "linear 256 10"], "mnist", 0,
     "layer 1 pads by 2, more than half its kernel 2: max-pooling allows pad up to 1"),
    (["linear 784 10"], "mnist", 0,
     "layer 1 needs flat features, gets a 1×28×28 image: put `flatten` before it"),
    (["flatten", "conv 1 4 3", "linear 784 10"], "mnist", 1,
     "layer 2 needs an image (channels×height×width), gets 784 flat features: put conv before `flatten`"),
    (["conv 1 8 3", "bn1d 8", "flatten", "linear 5408 10"], "mnist", 1,
     "layer 2 needs flat features, gets a 8×26×26 image: use `bn2d 8` on images"),
    (["flatten", "dropout 1.5", "linear 784 10"], "mnist", 1,
     "layer 2 needs P between 0 and 1 (dropout P), gets 1.5"),
    (["conv 3 8 3 pad=1", "inception 6 2 2 2 2 2 2", "flatten", "linear 8192 10"], "cifar10", 1,
     "layer 2 expects 6 channels, gets 8"),
    (["conv 1 8 3", "resblock 16", "flatten", "linear 5408 10"], "mnist", 1, "layer 2 expects 16 channels, gets 8"),
    (["flatten", "linear 784 60"], "mnist", 1,
     "layer 2 is the last and outputs 60 features, but mnist has 10 classes: the network must end with 10 features"),
    (["conv 3 8 3"], "cifar10", 0,
     "layer 1 is the last and outputs a 8×30×30 image, but cifar10 has 10 classes: "
     "the network must end with 10 features"),
    ([], "mnist", None, "the network has no layers"),
    (["relu"] * 101, "mnist", None, "the network has 101 layers; zoolab builds at most 100"),
    (["flatten", "linear 784 65536", "linear 65536 10"], "mnist", 1,
     "layer 2 brings the network to 51,445,760 parameters; the limit is 50,000,000"),
    (["conv 1 8 1 pad=500", "flatten", "linear 8454272 10"], "mnist", 0,
     "layer 1 brings the activations to 32.3 MiB per image; the limit is 32 MiB"),
    (["relu" + " " * 200, *HEAD], "mnist", 0, "layer 1 is 204 characters long; a layer is at most 100"),
    (["flatten", "linear ７８４ 10"], "mnist", 1,
     "layer 2 needs a whole number for IN (linear IN OUT), gets `７８４`"),
    (["flatten", "dropout NaN", "linear 784 10"], "mnist", 1, "layer 2 needs a number for P (dropout P), gets `NaN`"),
]


@pytest.mark.parametrize("layers, dataset, index, message", REFUSALS, ids=[m for *_, m in REFUSALS])
def test_refusals_word_for_word_at_their_layer(client, layers, dataset, index, message):
    r = _check(client, layers, dataset)
    assert r.status_code == 422, r.text
    loc = ["body", "layers"] if index is None else ["body", "layers", index]
    assert r.json() == {"detail": [{"loc": loc, "msg": message, "type": "value_error"}]}


HOSTILE = [
    b'{"layers": ' + json.dumps(["relu"] * 5000).encode() + b', "dataset": "mnist"}',  # a huge list
    b'{"layers": ["' + b"x" * 50_000 + b'"], "dataset": "mnist"}',                   # a huge string
    b'{"layers": ["\\ud800"], "dataset": "mnist"}',                                   # a lone surrogate
    b'{"layers": ["flatten", "linear 784 10\\udfff"], "dataset": "mnist"}',
    b'{"layers": [NaN], "dataset": "mnist"}',
    b'{"layers": ["flatten", Infinity], "dataset": "mnist"}',
    b'{"layers": NaN, "dataset": "mnist"}',
    b'{"layers": ["flatten", "linear 784 10"], "dataset": NaN}',
    b'{"layers": "flatten", "dataset": "mnist"}',
    b'{"layers": {"0": "flatten"}, "dataset": "mnist"}',
    b'{"layers": [["flatten"]], "dataset": "mnist"}',
    b'{"layers": [null], "dataset": "mnist"}',
    b'{"layers": [784], "dataset": "mnist"}',
    b'{"layers": ["flatten", "linear 784 10"], "dataset": 1}',
    b'{"layers": ["flatten", "linear 784 10"], "dataset": "imagenet"}',
    b'{"layers": ["flatten", "linear 784 10"], "dataset": "mnist", "model": "mnist-logreg"}',
    b'{"layers": ["flatten", "linear 784 10"]}',
    b'{"dataset": "mnist"}',
    b'[]',
    b'null',
    b'"flatten"',
    b'{"layers": ["flatten", "linear 784 10"], "dataset": "mnist"',
]


@pytest.mark.parametrize("body", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_bodies_get_json_422(client, body):
    r = client.post(URL, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/json"
    detail = r.json()["detail"]
    assert detail and all(e["loc"][0] == "body" and e["msg"] for e in detail)


def test_undecodable_bytes_get_json_400(client):
    r = client.post(URL, content=b'\xff\xfe not json', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json() == {"detail": "There was an error parsing the body"}


def test_a_lone_surrogate_comes_back_escaped(client):
    r = client.post(URL, content=b'{"layers": ["\\ud800 1"], "dataset": "mnist"}',
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"] == [{
        "loc": ["body", "layers", 0], "type": "string_unicode", "input": "\\ud800 1",
        "msg": "Input should be a valid string, unable to parse raw data as a unicode string"}]


def test_the_check_is_documented(client):
    operation = client.get("/openapi.json").json()["paths"][URL]["post"]
    assert "422" in operation["responses"] and "200" in operation["responses"]
