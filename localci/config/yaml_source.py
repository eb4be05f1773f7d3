"""Safe YAML loading that keeps file:line for every mapping key and list item.

Mappings load as `LocDict`, sequences as `LocList`, `!reference [a, b]` as `Reference`.
YAML 1.1 scalars follow PyYAML's resolver (as Ruby's Psych does), except timestamps and
the `=` value tag, which GitLab never turns into objects and which we keep as strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from localci.errors import ConfigError, Location, Problem

MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
MAX_NODES = 1_000_000
# GitLab's own limit (Gitlab::Config::Loader::Yaml MAX_YAML_DEPTH); also keeps recursion bounded.
MAX_DEPTH = 100
# Values a document may hold once aliases are expanded: an alias is counted every time it is
# used, as everything after loading (merging, !reference, flattening, printing) copies it.
MAX_EXPANDED = 1_000_000


class LocDict(dict[str, Any]):
    """A mapping that remembers where it and each of its keys were written."""

    loc: Location | None = None
    key_locs: dict[str, Location]

    def __init__(self, *args: Any, loc: Location | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loc = loc
        self.key_locs = {}

    def where(self, key: str) -> Location | None:
        return self.key_locs.get(key, self.loc)


class LocList(list[Any]):
    """A sequence that remembers where it and each of its items were written."""

    loc: Location | None = None
    item_locs: list[Location | None]

    def __init__(self, *args: Any, loc: Location | None = None) -> None:
        super().__init__(*args)
        self.loc = loc
        self.item_locs = []

    def where(self, index: int) -> Location | None:
        if 0 <= index < len(self.item_locs) and self.item_locs[index] is not None:
            return self.item_locs[index]
        return self.loc


@dataclass(frozen=True, slots=True)
class Reference:
    """An unresolved `!reference [job, key, ...]` tag."""

    path: tuple[str, ...]
    loc: Location | None = None

    def __str__(self) -> str:
        return "!reference [" + ", ".join(self.path) + "]"


def location_of(value: Any) -> Location | None:
    return getattr(value, "loc", None)


# libyaml's parser is ~5x faster than PyYAML's pure-Python one; constructors stay ours.
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """SafeLoader producing located containers; one instance per document stream."""

    display_name = "<string>"
    warnings: list[str]
    node_count = 0

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        # PyYAML resolves every scalar's tag with regexes in Python; CI files repeat the same
        # scalars (stage names, commands) a lot, so remember the answers. Only plain scalars
        # have implicit types (there are no path resolvers): a quoted one is a string.
        if kind is ScalarNode:
            if not implicit[0]:
                return _STR
            tag = _RESOLVED.get(value)
            return tag if tag is not None else _resolve_plain(self, value, implicit)
        return super().resolve(kind, value, implicit)

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        """Nothing to track without path resolvers (libyaml calls this for every node)."""

    def ascend_resolver(self) -> None:
        """Nothing to track without path resolvers."""

    def _loc(self, node: Node) -> Location:
        mark = node.start_mark
        return Location(self.display_name, mark.line + 1, mark.column + 1)

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self.node_count += 1
        if self.node_count > MAX_NODES:
            raise ConfigError(
                Problem(
                    f"the YAML document has more than {MAX_NODES:,} nodes",
                    Location(self.display_name, 1),
                    hint="split the configuration; GitLab limits configuration size too",
                )
            )
        node: Node | None = super().compose_node(parent, index)
        return node

    def construct_document(self, node: Node) -> Any:
        # libyaml composes in C, so the node graph is checked here, before anything is built.
        _check_node_graph(self, node)
        return super().construct_document(node)

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        """PyYAML's, with an explicit tag that does not fit its node (`!!int soon`,
        `!!map x`, `--- !!map` over a list) refused as invalid YAML at the node."""
        _check_tag_kind(self, node)
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError):
            raise ConfigError(_mistagged(self, node)) from None


_NODE_KIND_OF_TAG: dict[str, type[Node]] = {
    "tag:yaml.org,2002:map": MappingNode,
    "tag:yaml.org,2002:seq": SequenceNode,
}


def _check_tag_kind(loader: _Loader, node: Node) -> None:
    wanted = _NODE_KIND_OF_TAG.get(node.tag)
    if wanted is not None and not isinstance(node, wanted):
        raise ConfigError(_mistagged(loader, node))


def _mistagged(loader: _Loader, node: Node) -> Problem:
    tag = node.tag.replace("tag:yaml.org,2002:", "!!")
    if isinstance(node, ScalarNode):
        what = f"{node.value!r}"
    else:
        what = "a mapping" if isinstance(node, MappingNode) else "a list"
    return Problem(
        f"invalid YAML: {what} cannot be read as {tag}",
        loader._loc(node),
        hint=f"remove the {tag} tag or give a value of that type",
    )


_RESOLVED: dict[str, str] = {}  # plain scalar -> tag
_STR = "tag:yaml.org,2002:str"


def _resolve_plain(loader: _Loader, value: str, implicit: Any) -> str:
    tag: str = yaml.resolver.Resolver.resolve(loader, ScalarNode, value, implicit)  # type: ignore[no-untyped-call]
    if len(_RESOLVED) < 100_000:
        _RESOLVED[value] = tag
    return tag


def _flatten_merge_keys(loader: _Loader, node: MappingNode) -> None:
    """Resolve `<<` like Ruby's Psych: own keys win, then the first listed mapping wins.

    PyYAML's own flatten lets the *last* mapping of `<<: [*a, *b]` win; GitLab does not.
    """
    pairs: dict[Any, tuple[Node, Node]] = {}
    own: list[tuple[Node, Node]] = []
    for key_node, value_node in node.value:
        if key_node.tag != "tag:yaml.org,2002:merge":
            if key_node.tag == "tag:yaml.org,2002:value":
                key_node.tag = "tag:yaml.org,2002:str"
            own.append((key_node, value_node))
            continue
        sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
        for source in sources:
            if not isinstance(source, MappingNode):
                raise ConfigError(
                    Problem("`<<` needs a mapping or a list of mappings", loader._loc(source))
                )
            _flatten_merge_keys(loader, source)
            for pair in source.value:
                pairs.setdefault(_identity(pair[0]), pair)
    for pair in own:
        pairs[_identity(pair[0])] = pair
    node.value = list(pairs.values())


def _identity(key_node: Node) -> Any:
    return key_node.value if isinstance(key_node, ScalarNode) else id(key_node)


_MERGE = "tag:yaml.org,2002:merge"
_VALUE = "tag:yaml.org,2002:value"


def _construct(loader: _Loader, node: Node) -> Any:
    """`loader.construct_object(node, deep=True)`, with short cuts for the plain strings,
    mappings and sequences that nearly all of a CI file is made of."""
    if node.__class__ is ScalarNode:
        return node.value if node.tag == _STR else loader.construct_object(node, deep=True)
    built = loader.constructed_objects  # an anchor's aliases share one object, as in PyYAML
    if node in built:
        return built[node]
    if isinstance(node, MappingNode) and node.tag == "tag:yaml.org,2002:map":
        data: Any = _construct_mapping(loader, node)
    elif isinstance(node, SequenceNode) and node.tag == "tag:yaml.org,2002:seq":
        data = _construct_sequence(loader, node)
    else:
        return loader.construct_object(node, deep=True)
    built[node] = data
    return data


def _construct_mapping(loader: _Loader, node: MappingNode) -> LocDict:
    if _scan_keys(loader, node):
        _flatten_merge_keys(loader, node)
    file = loader.display_name
    mark = node.start_mark
    result = LocDict(loc=Location(file, mark.line + 1, mark.column + 1))
    key_locs = result.key_locs
    yield_later: list[tuple[str, Node]] = []
    for key_node, value_node in node.value:
        if key_node.__class__ is ScalarNode and key_node.tag == _STR:
            key = key_node.value
        else:
            key = _construct(loader, key_node)
            if isinstance(key, (list, dict)):
                raise ConfigError(Problem("a mapping key must be a scalar", loader._loc(key_node)))
            key = _key_text(key)
        yield_later.append((key, value_node))
        mark = key_node.start_mark
        key_locs[key] = Location(file, mark.line + 1, mark.column + 1)
    for key, value_node in yield_later:
        if value_node.__class__ is ScalarNode and value_node.tag == _STR:
            result[key] = value_node.value
        else:
            result[key] = _construct(loader, value_node)
    return result


def _key_text(key: Any) -> str:
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def _scan_keys(loader: _Loader, node: MappingNode) -> bool:
    """Warn about duplicate keys; True when `_flatten_merge_keys` has work to do (`<<` or `=`
    keys, keys that are not scalars, or duplicates, which it reduces to the last one)."""
    seen: dict[str, Node] = {}
    flatten = False
    for key_node, _ in node.value:
        if key_node.__class__ is not ScalarNode:
            flatten = True
            continue
        tag = key_node.tag
        if tag == _MERGE:
            flatten = True
            continue
        if tag == _VALUE:
            flatten = True
        text = key_node.value
        if text in seen:
            flatten = True
            loader.warnings.append(
                f"{loader.display_name}:{key_node.start_mark.line + 1}: duplicate key {text!r} "
                f"(first at line {seen[text].start_mark.line + 1}); the last one wins"
            )
        seen[text] = key_node
    return flatten


def _construct_sequence(loader: _Loader, node: SequenceNode) -> LocList:
    file = loader.display_name
    mark = node.start_mark
    result = LocList(loc=Location(file, mark.line + 1, mark.column + 1))
    item_locs = result.item_locs
    for child in node.value:
        if child.__class__ is ScalarNode and child.tag == _STR:
            result.append(child.value)
        else:
            result.append(_construct(loader, child))
        mark = child.start_mark
        item_locs.append(Location(file, mark.line + 1, mark.column + 1))
    return result


def _construct_reference(loader: _Loader, node: Node) -> Reference:
    loc = loader._loc(node)
    items = node.value if isinstance(node, SequenceNode) else None
    if not items or not all(isinstance(i, ScalarNode) for i in items):
        raise ConfigError(
            Problem(
                "!reference must be a list of one or more strings, "
                "e.g. !reference [.setup, script]",
                loc,
            )
        )
    return Reference(tuple(str(i.value) for i in items), loc)


def _construct_timestamp_as_text(loader: _Loader, node: ScalarNode) -> str:
    return str(node.value)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp_as_text)
_Loader.add_constructor("tag:yaml.org,2002:value", _construct_timestamp_as_text)
_Loader.add_constructor("!reference", _construct_reference)


def _unknown_tag(loader: _Loader, suffix: str, node: Node) -> Any:
    raise ConfigError(
        Problem(
            f"unknown YAML tag {node.tag!r}",
            loader._loc(node),
            hint="GitLab accepts only !reference besides standard YAML",
        )
    )


_Loader.add_multi_constructor("!", _unknown_tag)
_Loader.add_multi_constructor("tag:", _unknown_tag)


def load_documents(text: str, display_name: str) -> tuple[list[Any], list[str]]:
    """Parse every YAML document of `text`; returns (documents, warnings)."""
    if len(text.encode("utf-8", errors="replace")) > MAX_DOCUMENT_BYTES:
        raise ConfigError(
            Problem(
                f"the file is larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB",
                Location(display_name, 1),
                hint="GitLab rejects configurations this large; split it or remove generated parts",
            )
        )
    loader = _Loader(text)
    loader.display_name = display_name
    loader.warnings = []
    docs: list[Any] = []
    try:
        while loader.check_data():
            docs.append(loader.get_data())
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_yaml_problem(exc, display_name)) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - text.rfind("\n", 0, exc.position)
        raise ConfigError(
            Problem(
                f"invalid YAML: unacceptable character {exc.character!r}: {exc.reason}",
                Location(display_name, line, column),
                hint="remove control characters; YAML allows only printable text",
            )
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(Problem(f"invalid YAML: {exc}", Location(display_name, 1))) from None
    except RecursionError:
        raise ConfigError(
            Problem(
                "the YAML is nested too deeply",
                Location(display_name, 1),
            )
        ) from None
    finally:
        loader.dispose()
    return docs, loader.warnings


def _check_node_graph(loader: _Loader, root: Node) -> None:
    """Refuse deep nesting and alias bombs ("billion laughs") before anything expands them.

    An alias is the same node as its anchor, so walking the graph counts it every time it is
    used; the walk stops as soon as a limit is passed.
    """
    parts: list[tuple[Node | None, Node]]
    if isinstance(root, MappingNode):
        parts, depth = list(root.value), 1
    else:
        parts, depth = [(None, root)], 0
    budget = MAX_EXPANDED
    for key, value in parts:
        budget -= _walk_nodes(loader, value, depth, budget)
        if budget < 0:
            subject = f"`{key.value}`" if isinstance(key, ScalarNode) else "the document"
            raise ConfigError(
                Problem(
                    f"{subject} holds more than {MAX_EXPANDED:,} values once its YAML "
                    "aliases are expanded",
                    loader._loc(key if key is not None else value),
                    hint="aliases of aliases multiply; GitLab rejects YAML this big",
                )
            )


def _walk_nodes(loader: _Loader, node: Node, parents: int, limit: int) -> int:
    """How many nodes `node` holds with aliases expanded (stops past `limit`); checks that
    no collection is nested in more than MAX_DEPTH - 1 others (`parents` enclose `node`)."""
    count = 0
    stack: list[tuple[Node, int]] = [(node, parents)]
    while stack and count <= limit:
        item, depth = stack.pop()
        count += 1
        if isinstance(item, ScalarNode):
            continue
        if depth >= MAX_DEPTH:
            raise ConfigError(
                Problem(
                    f"the YAML is nested more than {MAX_DEPTH} levels deep",
                    loader._loc(item),
                    hint="GitLab rejects YAML nested this deeply (so does an anchor used "
                    "inside itself)",
                )
            )
        if isinstance(item, SequenceNode):
            stack.extend((child, depth + 1) for child in item.value)
        elif isinstance(item, MappingNode):
            for key, value in item.value:
                stack.extend(((key, depth + 1), (value, depth + 1)))
    return count


def _yaml_problem(exc: yaml.MarkedYAMLError, display_name: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    loc = Location(display_name, mark.line + 1, mark.column + 1) if mark else None
    problem = exc.problem or "invalid YAML"
    hint = None
    if "undefined alias" in problem or "found undefined alias" in str(exc):
        hint = (
            "anchors only work inside one file; to reuse a value from another file use "
            "!reference [job, key] or extends"
        )
    context = f" ({exc.context})" if exc.context and exc.context != problem else ""
    return Problem(f"invalid YAML: {problem}{context}", loc, hint=hint)
