"""Read NVIDIA `stylegan2-ada-pytorch` / `stylegan3` network pickles without running their code.

Those `.pkl` files are pickles of `torch_utils.persistence` objects: each network class is stored
with the *source code of its module* (`module_src`), which NVIDIA's loader `exec`s. Loading one with
plain `pickle` therefore runs arbitrary code. This unpickler never does: every global the stream
names is answered by `find_class` from a fixed allow-list of tensor-rebuilding functions and plain
containers, and anything else becomes an inert `OpaqueObject` that only records what it was given.
Persistent networks come back as `PickledModule`s holding the module tree (`_parameters`,
`_buffers`, `_modules`) and the constructor kwargs, from which a flat state dict is read.

Two more doors are shut. Pickle's BUILD opcode sets attributes on whatever object is on the stack,
including real functions reached through the allow-list (a few bytes could rewrite
`torch._utils._rebuild_tensor_v2.__defaults__` for the whole process), so BUILD is honoured only on
our own inert stand-ins and refused everywhere else. And a tensor may not claim more elements than
its storage holds (a stride-0 view lets a 378-byte file declare gigabytes of weights), nor may a
storage's zip expand beyond what its bytes can honestly hold.
"""

from __future__ import annotations

import collections
import io
import pickle
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import torch


@dataclass
class PickledModule:
    """A persistence-wrapped `torch.nn.Module` as stored: class name, attributes, and submodules.

    `source_file` names the NVIDIA file the class came from, recognised from the embedded source as
    text (never run): the two repositories give the same class names different defaults."""

    class_name: str
    state: dict[str, Any]
    source_file: str = "unknown"

    @property
    def init_kwargs(self) -> dict[str, Any]:
        return dict(self.state.get("_init_kwargs", {}) or {})

    @property
    def init_args(self) -> tuple:
        return tuple(self.state.get("_init_args", ()) or ())

    def named_tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Flatten parameters and buffers of this module tree into `state_dict`-style dotted names."""
        tensors: dict[str, torch.Tensor] = {}
        for group in ("_parameters", "_buffers"):
            for name, value in (self.state.get(group) or {}).items():
                if isinstance(value, torch.Tensor):
                    tensors[prefix + name] = value.detach()
        for name, child in (self.state.get("_modules") or {}).items():
            if isinstance(child, (PickledModule, OpaqueObject)):
                tensors.update(child.named_tensors(prefix + name + "."))
        return tensors


@dataclass
class OpaqueObject:
    """Stands in for an object of a class we do not allow: keeps its name, arguments and state, runs nothing."""

    qualified_name: str
    args: tuple = ()
    state: Any = None
    items: list = field(default_factory=list)

    def __setstate__(self, state: Any) -> None:  # called by pickle's BUILD opcode
        self.state = state

    def named_tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Plain `nn.Module`s (e.g. `torch.nn.ModuleList`) are opaque here but still hold tensors."""
        if not isinstance(self.state, dict):
            return {}
        return PickledModule(self.qualified_name, self.state).named_tensors(prefix)


def _opaque_factory(qualified_name: str):
    """A callable/class stand-in: calling it or `cls.__new__(cls, ...)` yields an OpaqueObject."""

    class _Opaque(OpaqueObject):
        def __new__(cls, *args: Any, **kwargs: Any) -> OpaqueObject:  # NEWOBJ path
            return OpaqueObject(qualified_name, args)

        def __init__(self, *args: Any, **kwargs: Any) -> None:  # pragma: no cover - __new__ returns another type
            pass

    _Opaque.__name__ = _Opaque.__qualname__ = qualified_name.rsplit(".", 1)[-1]
    return _Opaque


class EasyDict(dict):
    """Stand-in for `dnnlib.EasyDict`: a dict with attribute access, and nothing else."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc


# Text that identifies NVIDIA's network files in the source embedded in their pickles.
SOURCE_MARKERS = (
    ("stylegan3/networks_stylegan3.py", "class SynthesisInput"),
    ("stylegan3/networks_stylegan2.py", "training/networks_stylegan2.py"),  # its docstring cites this path
    ("stylegan2-ada/networks.py", "class SynthesisNetwork"),
)


def source_file_of(module_src: Any) -> str:
    """Which NVIDIA network file a persistent class was saved from, by searching its source text."""
    if not isinstance(module_src, str):
        return "unknown"
    return next((name for name, marker in SOURCE_MARKERS if marker in module_src), "unknown")


def _reconstruct_persistent_obj(meta: dict[str, Any]) -> Any:
    """Replacement for `torch_utils.persistence._reconstruct_persistent_obj`: keeps `state`, and of
    `module_src` only which file it is."""
    if not isinstance(meta, dict) or meta.get("type") != "class":
        return OpaqueObject("torch_utils.persistence._reconstruct_persistent_obj", (meta,))
    state = meta.get("state")
    return PickledModule(str(meta.get("class_name")), state if isinstance(state, dict) else {},
                         source_file_of(meta.get("module_src")))


def _load_storage_from_bytes(data: bytes) -> Any:
    """Replacement for `torch.storage._load_from_bytes`, which calls torch.load with weights_only=False."""
    from generators.tensor_limits import check_zip_expansion

    check_zip_expansion(io.BytesIO(data), len(data), "a stored tensor")
    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")


def _rebuild_tensor_v2(storage: Any, storage_offset: int, size: Any, stride: Any, *rest: Any) -> torch.Tensor:
    """`torch._utils._rebuild_tensor_v2`, refusing a tensor that claims more elements than its storage."""
    from generators.tensor_limits import check_view_fits

    tensor = torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, *rest)
    check_view_fits(tensor, "a pickled tensor")
    return tensor


def _reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """Replacement for `copyreg._reconstructor`: instantiate only our own inert stand-ins."""
    if isinstance(cls, type) and issubclass(cls, OpaqueObject):
        return cls.__new__(cls)
    if cls is EasyDict:
        return EasyDict()
    return OpaqueObject(getattr(cls, "__name__", repr(cls)), (base, state))


def _rebuild_from_type_v2(func: Any, new_type: Any, args: tuple, state: Any) -> Any:
    """Tensor subclasses are rebuilt as plain tensors/parameters; their Python state is ignored."""
    return func(*args)


_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("dnnlib", "EasyDict"): EasyDict,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "object"): object,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
    ("torch", "Size"): torch.Size,
    ("torch", "Tensor"): torch.Tensor,
    ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
    ("torch", "device"): torch.device,
}
for _dtype_name in ("float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64", "uint8", "bool"):
    _SAFE_GLOBALS[("torch", _dtype_name)] = getattr(torch, _dtype_name)


class RestrictedUnpickler(pickle._Unpickler):
    """An unpickler whose `find_class` never imports or returns foreign code and whose BUILD never
    touches a real object.

    It is the pure-Python `pickle._Unpickler`, because the C one offers no hook on BUILD. Network
    pickles hold their weights in a few large byte strings, so this costs little time."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def load_build(self) -> None:
        state = self.stack.pop()
        target = self.stack[-1]
        if isinstance(target, OpaqueObject) and not isinstance(target, type):
            target.__setstate__(state)
            return
        if type(target) is EasyDict and not state:
            return  # an EasyDict pickled with an empty __dict__
        raise pickle.UnpicklingError(
            f"the pickle tries to set attributes on {getattr(target, '__qualname__', type(target).__name__)}, which no "
            f"network pickle does (a crafted file)"
        )

    dispatch[pickle.BUILD[0]] = load_build

    def find_class(self, module: str, name: str) -> Any:
        safe = _SAFE_GLOBALS.get((module, name))
        if safe is not None:
            return safe
        return _opaque_factory(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not expected in a network pickle")


def load(handle: BinaryIO) -> Any:
    return RestrictedUnpickler(handle).load()
