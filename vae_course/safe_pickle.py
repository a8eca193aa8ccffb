"""The shape of a pickle, read before it is unpickled: bounded work, bounded memory.

``torch.load(weights_only=True)`` refuses pickled *code*, but not pickled
*size*. A few megabytes of pickle can describe a structure that costs
gigabytes once built, or hours once walked: millions of empty dicts (two
bytes of pickle each, about a hundred of memory), one record referenced a
million times through the pickle's memo, or a list that holds itself twice,
28 levels deep (2**28 paths for any validator or checksum that walks it).

:func:`scan` walks the pickle's instructions with :func:`pickletools.genops`
*without building the objects*. For every container it keeps a few numbers:
how many nodes its tree has when every memo reference is counted in full (what
walking it would visit), how deep it is, and how many tensor bytes it refers
to. Every count has a hard limit, checked as the instructions are read, so a
hostile file is refused after at most ``MAX_OBJECTS`` steps. Only the
instructions and globals that ``torch.save`` writes for tensors and plain
Python values are accepted.

Two rules make the counts exact even for crafted pickles: a container may be
changed only until it is placed inside another object (so no count taken
before a change can be wrong later), and nothing may be placed inside itself
(so there are no cycles). ``pickle.Pickler`` never writes either.
"""
from __future__ import annotations

import io
import pickletools
from dataclasses import dataclass, field
from typing import Any, Callable

from .bounds import shown

# ---------------------------------------------------------------- limits
MAX_OBJECTS = 500_000  # objects the pickle creates (a checkpoint with a 10,000-epoch history: about 141,000)
MAX_MEMO_REFERENCES = 1_000_000  # BINGET / LONG_BINGET: references to objects made earlier
MAX_TREE_NODES = 2_000_000  # nodes of the whole tree, each reference counted in full
MAX_NESTING = 32  # containers inside containers
MAX_STORAGE_ELEMENTS = 2**40  # per tensor storage, before any size is compared with the file
KEEP = 64  # children remembered per container, for reading small fields before loading
# torch.save's storage classes for the plain dtypes -> bytes per element
STORAGE_BYTES = {
    "torch.DoubleStorage": 8, "torch.FloatStorage": 4, "torch.HalfStorage": 2, "torch.BFloat16Storage": 2,
    "torch.LongStorage": 8, "torch.IntStorage": 4, "torch.ShortStorage": 2, "torch.CharStorage": 1,
    "torch.ByteStorage": 1, "torch.BoolStorage": 1,
}
REBUILD_TENSOR = "torch._utils._rebuild_tensor_v2"
ORDERED_DICT = "collections.OrderedDict"
ALLOWED_GLOBALS = {REBUILD_TENSOR, ORDERED_DICT, *STORAGE_BYTES}


class PickleRefused(ValueError):
    """The pickle is refused; the message completes "<file> ..." in one line."""


class Node:
    """One object of the pickle that is not a plain value (atoms are kept as themselves).

    ``kind``: ``"dict"``, ``"list"``, ``"tuple"``, ``"tensor"``, ``"storage"`` or ``"global"``.
    ``nodes``: tree size, every reference counted in full; ``depth``: nesting;
    ``tensor_bytes``: storage bytes reached, every reference counted;
    ``length``: children; ``items``: the first :data:`KEEP` children (dict: ``(key, value)``
    pairs), ``None`` beyond; ``sealed``: placed inside another object (no more changes).
    """

    __slots__ = ("kind", "nodes", "depth", "tensor_bytes", "length", "items", "sealed", "name")

    def __init__(self, kind: str, name: str = "") -> None:
        self.kind, self.name = kind, name
        self.nodes, self.depth, self.tensor_bytes, self.length = 1, 0, 0, 0
        self.items: list | tuple | None = ()  # a list from the first child on (an empty one costs memory)
        self.sealed = False


@dataclass
class PickleShape:
    """What :func:`scan` found: the top object and every tensor storage it refers to."""

    root: Any
    storages: dict[str, tuple[str, int]] = field(default_factory=dict)  # record key -> (storage class, numel)
    objects: int = 0
    references: int = 0


def stats(value: Any) -> tuple[int, int, int]:
    """``(tree nodes, depth, tensor bytes)`` of a node or a plain value."""
    return (value.nodes, value.depth, value.tensor_bytes) if isinstance(value, Node) else (1, 0, 0)


def entries(value: Any) -> dict[str, Any] | None:
    """A dict node's entries (string key -> child) when all were kept and every key is a
    string; ``None`` otherwise."""
    if not isinstance(value, Node) or value.kind != "dict" or value.items is None:
        return None
    if not all(isinstance(k, str) for k, _ in value.items):
        return None
    return dict(value.items)


class Unread:
    """Stands for a part of the pickle too large (or not plain enough) to read before loading."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return f"<{self.kind}>"


def materialize(value: Any, budget: int = 256) -> Any:
    """A plain Python copy of a small part of the pickle (dicts, lists, tuples of plain
    values); larger or other parts become :class:`Unread`. At most ``budget`` objects."""
    left = [budget]

    def build(v: Any) -> Any:
        left[0] -= 1
        if not isinstance(v, Node):
            return v
        if left[0] < 0 or v.items is None or v.kind not in ("dict", "list", "tuple"):
            return Unread(v.kind)
        if v.kind == "dict":
            pairs = [(build(k), build(x)) for k, x in v.items]
            if not all(isinstance(k, (str, int, float, bool, type(None))) for k, _ in pairs):
                return Unread("dict")
            return dict(pairs)
        items = [build(x) for x in v.items]
        return items if v.kind == "list" else tuple(items)

    return build(value)


# ---------------------------------------------------------------- the walk
class _Scanner:
    def __init__(self) -> None:
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: dict[int, Any] = {}
        self.shape = PickleShape(root=None)

    # -- bookkeeping
    def push(self, value: Any) -> None:
        self.shape.objects += 1
        if self.shape.objects > MAX_OBJECTS:
            raise PickleRefused(f"describes more than {MAX_OBJECTS:,} objects (a checkpoint needs far fewer); "
                                f"it was not loaded")
        self.stack.append(value)

    def pop(self) -> Any:
        if not self.stack:
            raise PickleRefused("is corrupted (its pickle reads from an empty stack); it was not loaded")
        return self.stack.pop()

    def pop_mark(self) -> list[Any]:
        if not self.marks:
            raise PickleRefused("is corrupted (its pickle has no mark where one is needed); it was not loaded")
        at = self.marks.pop()
        items, self.stack[at:] = self.stack[at:], []
        return items

    def adopt(self, parent: Node, child: Any, keep: Any = None) -> None:
        """``child`` becomes part of ``parent``: its counts are added, and it is sealed."""
        if child is parent:
            raise PickleRefused("holds a container inside itself (a cycle), which torch.save never writes; "
                                "it was not loaded")
        nodes, depth, tensor_bytes = stats(child)
        if isinstance(child, Node):
            child.sealed = True
        parent.nodes += nodes
        parent.depth = max(parent.depth, depth + 1)
        parent.tensor_bytes = min(parent.tensor_bytes + tensor_bytes, 2**62)
        parent.length += 1
        if parent.nodes > MAX_TREE_NODES:
            raise PickleRefused(f"describes a structure of more than {MAX_TREE_NODES:,} objects once its shared "
                                f"references are followed (a checkpoint has far fewer); it was not loaded")
        if parent.depth > MAX_NESTING:
            raise PickleRefused(f"is nested more than {MAX_NESTING} levels deep; it is damaged or crafted, and "
                                f"was not loaded")
        if parent.items is not None and parent.length <= KEEP:
            if not parent.items:
                parent.items = []
            parent.items.append(keep if keep is not None else child)
        else:
            parent.items = None

    def target(self, below: int) -> Node:
        """The container an APPEND / SETITEM / BUILD changes, which must still be open."""
        if below < 1 or len(self.stack) < below:
            raise PickleRefused("is corrupted (its pickle changes an object that is not there); it was not loaded")
        node = self.stack[-below]
        if not isinstance(node, Node) or node.kind not in ("dict", "list"):
            raise PickleRefused(f"adds items to a {type(node).__name__ if not isinstance(node, Node) else node.kind}, "
                                f"which torch.save never writes; it was not loaded")
        if node.sealed:
            raise PickleRefused("changes a container after placing it inside another one, which torch.save never "
                                "writes (it could hide how large the structure is); it was not loaded")
        return node

    # -- plain values
    def atom(self, value: Any) -> None:
        if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
            raise PickleRefused(f"holds {shown(value)}, beyond any field of a checkpoint (64 bits); it is damaged "
                                f"or crafted, and was not loaded")
        self.push(value)

    # -- containers
    def new(self, kind: str) -> Node:
        node = Node(kind)
        self.push(node)
        return node

    def tuple_of(self, items: list[Any]) -> None:
        node = Node("tuple")
        for item in items:
            self.adopt(node, item)
        self.push(node)

    def appends(self, items: list[Any]) -> None:
        node = self.target(1)
        if node.kind != "list":
            raise PickleRefused("appends to a dict, which torch.save never writes; it was not loaded")
        for item in items:
            self.adopt(node, item)

    def setitems(self, items: list[Any]) -> None:
        node = self.target(1)
        if node.kind != "dict" or len(items) % 2:
            raise PickleRefused("sets items of something that is not a dict; it was not loaded")
        for key, value in zip(items[::2], items[1::2]):
            if isinstance(key, Node):
                raise PickleRefused("has a dict key that is not a plain value, which torch.save never writes; "
                                    "it was not loaded")
            self.adopt(node, value, keep=(key, value))

    # -- references to Python objects
    def global_(self, module: Any, name: Any) -> None:
        full = f"{module}.{name}"
        if full not in ALLOWED_GLOBALS:
            raise PickleRefused(f"was refused: it contains Python objects other than tensors and plain types "
                                f"({full[:120]}), which could run code when loaded. Nothing was executed. Only "
                                f"load checkpoints you trust")
        self.push(Node("global", full))

    def reduce(self) -> None:
        args, func = self.pop(), self.pop()
        if not (isinstance(func, Node) and func.kind == "global") or not (isinstance(args, Node)
                                                                        and args.kind == "tuple"):
            raise PickleRefused("calls something that is not an allowed function, which torch.save never writes; "
                                "it was not loaded")
        if func.name == ORDERED_DICT and args.length == 0:
            self.new("dict")
        elif func.name == REBUILD_TENSOR:
            tensor = Node("tensor")
            self.adopt(tensor, args)
            tensor.length, tensor.items = 0, None
            self.push(tensor)
        else:
            raise PickleRefused(f"calls {func.name} in a way torch.save never writes; it was not loaded")
        func.sealed = True

    def persistent(self, pid: Any) -> None:
        """A tensor storage: ``('storage', <storage class>, key, location, numel)``."""
        items = pid.items if isinstance(pid, Node) and pid.kind == "tuple" else None
        ok = items is not None and len(items) == 5 and items[0] == "storage" and isinstance(items[1], Node) \
            and items[1].name in STORAGE_BYTES and isinstance(items[2], str) and len(items[2]) <= 64 \
            and isinstance(items[3], str) and isinstance(items[4], int) and 0 <= items[4] <= MAX_STORAGE_ELEMENTS
        if not ok:
            raise PickleRefused("refers to tensor data in a form torch.save never writes (a storage of another "
                                "kind or size); it was not loaded")
        kind, key, numel = items[1].name, items[2], items[4]
        if self.shape.storages.setdefault(key, (kind, numel)) != (kind, numel):
            raise PickleRefused(f"describes the tensor data {key!r} twice, with different sizes; it is damaged or "
                                f"crafted, and was not loaded")
        node = Node("storage", key)
        node.tensor_bytes, node.items = numel * STORAGE_BYTES[kind], None
        pid.sealed = True
        self.push(node)

    def build(self) -> None:
        state = self.pop()
        node = self.target(1)  # an OrderedDict with attributes (a state_dict's _metadata)
        self.adopt(node, state)
        node.length, node.items = node.length - 1, None  # its entries are no longer all known

    def get(self, index: Any) -> None:
        if index not in self.memo:
            raise PickleRefused("is corrupted (its pickle refers to an object it never made); it was not loaded")
        self.shape.references += 1
        if self.shape.references > MAX_MEMO_REFERENCES:
            raise PickleRefused(f"refers back to earlier objects more than {MAX_MEMO_REFERENCES:,} times (a "
                                f"checkpoint needs far fewer); it was not loaded")
        self.stack.append(self.memo[index])

    def put(self, index: Any) -> None:
        if not self.stack:
            raise PickleRefused("is corrupted (its pickle remembers an object that is not there); it was not loaded")
        self.memo[index] = self.stack[-1]
        if len(self.memo) > MAX_OBJECTS:
            raise PickleRefused(f"remembers more than {MAX_OBJECTS:,} objects (a checkpoint needs far fewer); it "
                                f"was not loaded")

    def mark(self) -> None:
        self.marks.append(len(self.stack))
        if len(self.marks) > MAX_NESTING + 8:  # each open mark is a container being filled
            raise PickleRefused(f"is nested more than {MAX_NESTING} levels deep; it is damaged or crafted, and "
                                f"was not loaded")


def _handlers(s: _Scanner) -> dict[str, Callable[[Any], None]]:
    """Opcode name -> what it does to the scanner (``arg``: the opcode's argument)."""
    atom = s.atom
    return {
        **{name: (lambda arg: None) for name in ("PROTO", "FRAME", "STOP")},
        **{name: atom for name in ("BININT", "BININT1", "BININT2", "LONG1", "LONG4", "INT", "LONG", "BINFLOAT",
                                   "FLOAT", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "UNICODE",
                                   "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BINSTRING", "SHORT_BINSTRING")},
        "NONE": lambda arg: atom(None), "NEWTRUE": lambda arg: atom(True), "NEWFALSE": lambda arg: atom(False),
        "EMPTY_DICT": lambda arg: s.new("dict"), "EMPTY_LIST": lambda arg: s.new("list"),
        "EMPTY_TUPLE": lambda arg: s.tuple_of([]),
        "MARK": lambda arg: s.mark(),
        "TUPLE": lambda arg: s.tuple_of(s.pop_mark()),
        "TUPLE1": lambda arg: s.tuple_of([s.pop()]),
        "TUPLE2": lambda arg: s.tuple_of(list(reversed([s.pop(), s.pop()]))),
        "TUPLE3": lambda arg: s.tuple_of(list(reversed([s.pop(), s.pop(), s.pop()]))),
        "LIST": lambda arg: _fill(s, "list", s.pop_mark()),
        "DICT": lambda arg: _fill(s, "dict", s.pop_mark()),
        "APPEND": lambda arg: s.appends([s.pop()]),
        "APPENDS": lambda arg: s.appends(s.pop_mark()),
        "SETITEM": lambda arg: s.setitems(list(reversed([s.pop(), s.pop()]))),
        "SETITEMS": lambda arg: s.setitems(s.pop_mark()),
        "POP": lambda arg: s.pop(),
        "POP_MARK": lambda arg: s.pop_mark(),
        "GLOBAL": lambda arg: s.global_(*(str(arg).split(" ", 1) + [""])[:2]),
        "STACK_GLOBAL": lambda arg: s.global_(*reversed([s.pop(), s.pop()])),
        "REDUCE": lambda arg: s.reduce(),
        "BUILD": lambda arg: s.build(),
        "BINPERSID": lambda arg: s.persistent(s.pop()),
        **{name: s.get for name in ("GET", "BINGET", "LONG_BINGET")},
        **{name: s.put for name in ("PUT", "BINPUT", "LONG_BINPUT")},
        "MEMOIZE": lambda arg: s.put(len(s.memo)),
    }


def _fill(s: _Scanner, kind: str, items: list[Any]) -> None:
    s.new(kind)
    (s.appends if kind == "list" else s.setitems)(items)


def scan(data: bytes) -> PickleShape:
    """Walk the pickle ``data`` (a checkpoint's ``data.pkl``) without building it.

    Returns its :class:`PickleShape`. Raises :class:`PickleRefused` (its message
    completes "<file> ...") for a structure over any limit, an instruction or a
    global ``torch.save`` never writes, a cycle, or damaged bytes.
    """
    s = _Scanner()
    handlers = _handlers(s)
    try:
        for opcode, arg, _ in pickletools.genops(io.BytesIO(data)):
            handler = handlers.get(opcode.name)
            if handler is None:
                raise PickleRefused(f"uses the pickle instruction {opcode.name}, which torch.save never writes; "
                                    f"it was not loaded")
            handler(arg)
    except PickleRefused:
        raise
    except (ValueError, TypeError, KeyError, IndexError, EOFError, UnicodeDecodeError, OverflowError) as err:
        raise PickleRefused(f"is truncated or corrupted (its pickle cannot be read: {type(err).__name__}); it was "
                            f"not loaded (nothing was executed) and is left as it is: use an earlier copy") from None
    if len(s.stack) != 1 or s.marks:
        raise PickleRefused("is truncated or corrupted (its pickle does not end with one object); it was not loaded")
    s.shape.root = s.stack[0]
    return s.shape
