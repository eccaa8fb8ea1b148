"""/architectures/check: a network's table — output shape and parameters per layer — on a
dataset's images, or a 422 whose error sits at the refused layer's index in the body."""

from typing import Annotated, Literal

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from app.auth import Authorized
from trainer import shapes
from trainer.datasets import DATASETS
from trainer.layers import MAX_LAYER_CHARS, LayerError

router = APIRouter(tags=["architectures"])

# Transport hygiene only: within these, the checker refuses longer networks and layers with
# its own sentences (and figures), the same ones POST /runs gives.
Layer = Annotated[str, Field(max_length=10 * MAX_LAYER_CHARS, examples=["linear 784 10"])]


class ArchitectureCheck(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    layers: Annotated[list[Layer], Field(max_length=10 * shapes.MAX_LAYERS,
                                         description="Layer strings, e.g. [\"flatten\", \"linear 784 10\"]")]
    dataset: Literal[tuple(DATASETS)]


class LayerRow(BaseModel):
    index: int = Field(description="1-based, as in the checker's messages")
    layer: str = Field(description="the layer as given")
    canonical: str = Field(description="the layer in canonical form (defaults left out)")
    shape: list[int] = Field(description="output for one image: [channels, height, width] or [features]")
    params: int
    activation_bytes: int = Field(description="memory the layer's forward pass writes per image (float32)")


class ArchitectureTable(BaseModel):
    dataset: str
    input_shape: list[int]
    rows: list[LayerRow]
    params: int
    activation_bytes: int


# Behind the token like every POST (README, Security), though it changes nothing.
@router.post("/architectures/check", response_model=ArchitectureTable, dependencies=[Authorized])
def check_architecture(body: ArchitectureCheck) -> ArchitectureTable:
    try:
        table = shapes.check(body.layers, body.dataset)
    except LayerError as e:
        loc = ("body", "layers") if e.index is None else ("body", "layers", e.index - 1)
        raise RequestValidationError([{"loc": loc, "msg": e.message, "type": "value_error"}]) from None
    return ArchitectureTable(
        dataset=table.dataset, input_shape=list(table.input_shape), params=table.params,
        activation_bytes=table.activation_bytes,
        rows=[LayerRow(index=r.index, layer=r.layer, canonical=str(r.spec), shape=list(r.shape),
                       params=r.params, activation_bytes=r.activation_bytes) for r in table.rows])
