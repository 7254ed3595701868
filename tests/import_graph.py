"""The import graph of a package tree: modules, cycles, levels, upward imports.

The helper of ``tests/test_layers.py``. An edge ``a -> b`` means module ``a`` imports module
``b`` somewhere in its text (at the top or inside a function: both are real dependencies),
except inside an ``if TYPE_CHECKING:`` block, which never runs. ``from p import x`` is an edge
to ``p.x`` when that is a module, else to ``p``. Parent packages that Python imports implicitly
(``doa/__init__.py`` for ``doa.wire.codec``) are not edges; an explicit import of a package is.

Run it to print the figures of a tree, for example before and after a regroup::

    python tests/import_graph.py                          # the checkout's doa/
    git worktree add /tmp/before a04ecd1                  # the tree before the regroup
    python tests/import_graph.py /tmp/before a04ecd1      # layered by today's names

The second argument is the revision checked out at the first: its modules are mapped to
today's names through git's rename detection, so both trees are judged by the same layers.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

Graph = dict[str, set[str]]


@dataclass(frozen=True)
class Import:
    """One import statement's edge: ``source`` imports ``target`` at ``line``."""

    source: str
    target: str
    line: int


def module_name(path: Path, root: Path) -> str:
    """``doa/wire/codec.py`` -> ``doa.wire.codec``; ``doa/wire/__init__.py`` -> ``doa.wire``."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path) -> dict[str, Path]:
    """Every module of the package at ``root`` by dotted name."""
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _statements(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import in ``tree``, at any depth, skipping ``if TYPE_CHECKING:`` bodies."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _known(name: str, known: set[str]) -> str | None:
    """The longest prefix of ``name`` that is a known module."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in known:
            return ".".join(parts[:end])
    return None


def imports_of(name: str, path: Path, known: set[str]) -> list[Import]:
    """The edges from module ``name`` (file ``path``) to modules in ``known``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []
    for stmt in _statements(ast.parse(path.read_text(), str(path))):
        if isinstance(stmt, ast.Import):
            targets = [_known(alias.name, known) for alias in stmt.names]
        else:
            base = stmt.module or ""
            if stmt.level:
                anchor = package.split(".")[: len(package.split(".")) - stmt.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [_known(f"{base}.{alias.name}", known) for alias in stmt.names]
        found.extend(Import(name, t, stmt.lineno) for t in dict.fromkeys(targets)
                     if t and t != name)
    return found


def edges(root: Path) -> list[Import]:
    """Every import edge inside the package at ``root``."""
    mods = modules(root)
    known = set(mods)
    return [e for name, path in mods.items() for e in imports_of(name, path, known)]


def graph(root: Path) -> Graph:
    """``module -> the modules it imports`` for the package at ``root``."""
    result: Graph = {name: set() for name in modules(root)}
    for e in edges(root):
        result[e.source].add(e.target)
    return result


def components(g: Graph) -> list[list[str]]:
    """Strongly connected components (Tarjan, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for start in sorted(g):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(g[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(g[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                found.append(sorted(component))
    return found


def cycles(g: Graph) -> list[list[str]]:
    """The import cycles: components of more than one module."""
    return sorted(c for c in components(g) if len(c) > 1)


def levels(g: Graph) -> dict[str, int]:
    """Each module's level: 1 for a module importing nothing inside the package, else one more
    than the highest level it imports (a cycle's modules share one level)."""
    comps = components(g)  # Tarjan emits a component after every component it reaches
    of = {m: i for i, c in enumerate(comps) for m in c}
    level: dict[int, int] = {}
    for i, comp in enumerate(comps):
        below = [level[of[t]] for m in comp for t in g[m] if of[t] != i]
        level[i] = 1 + max(below, default=0)
    return {m: level[of[m]] for m in g}


def chain(g: Graph) -> list[str]:
    """One longest import chain, from the highest module down to a level-1 module."""
    level = levels(g)
    path = [max(sorted(g), key=level.__getitem__)]
    while level[path[-1]] > 1:
        below = [t for t in sorted(g[path[-1]]) if level[t] == level[path[-1]] - 1]
        if not below:  # a cycle's modules share a level: step through the cycle's exit
            below = [t for m in sorted(g) if level[m] == level[path[-1]]
                     for t in sorted(g[m]) if level[t] == level[path[-1]] - 1]
        path.append(below[0])
    return path


def layer_index(layers: Sequence[Sequence[str]]) -> Callable[[str], int]:
    """A function giving a module's layer (0 = lowest) from ``layers``: each a list of module
    names, where ``p.*`` means the package ``p`` and everything under it. The most specific
    pattern wins; a module no pattern matches raises ``KeyError``."""
    def layer(module: str) -> int:
        best: tuple[int, int] | None = None
        for i, patterns in enumerate(layers):
            for pattern in patterns:
                prefix = pattern.removesuffix(".*")
                exact = module == pattern
                inside = pattern.endswith(".*") and (module == prefix
                                                    or module.startswith(prefix + "."))
                score = 2 * len(prefix) + exact
                if (exact or inside) and (best is None or score > best[0]):
                    best = (score, i)
        if best is None:
            raise KeyError(f"{module} is in no layer")
        return best[1]
    return layer


def upward(found: list[Import], layer: Callable[[str], int]) -> list[Import]:
    """The edges that import from a higher layer than their own."""
    return [e for e in found if layer(e.target) > layer(e.source)]


def renames(revision: str, repo: Path) -> dict[str, str]:
    """Old module name -> today's, for the modules git sees renamed since ``revision``."""
    out = subprocess.run(["git", "diff", "-M30%", "--name-status", revision, "HEAD", "--", "doa"],
                         cwd=repo, capture_output=True, text=True, check=True).stdout
    mapping: dict[str, str] = {}
    for row in out.splitlines():
        status, *paths = row.split("\t")
        if status.startswith("R") and all(p.endswith(".py") for p in paths):
            old, new = (module_name(repo / p, repo / "doa") for p in paths)
            mapping[old] = new
    return mapping


def report(root: Path, layer: Callable[[str], int], rename: dict[str, str]) -> str:
    """The figures of the tree at ``root`` as lines of text."""
    g = graph(root)
    up = upward(edges(root), lambda m: layer(rename.get(m, m)))
    lines = [f"modules: {len(g)}", f"edges: {sum(map(len, g.values()))}",
             f"levels: {max(levels(g).values())}", f"  chain: {' -> '.join(chain(g))}",
             f"cycles: {len(cycles(g))}"]
    lines += [f"  cycle of {len(c)}: {' '.join(c)}" for c in cycles(g)]
    lines.append(f"upward imports: {len(up)}")
    lines += [f"  {e.source}:{e.line} -> {e.target}" for e in up]
    return "\n".join(lines)


if __name__ == "__main__":
    here = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(here))
    from tests.test_layers import LAYERS

    tree = Path(sys.argv[1]) if len(sys.argv) > 1 else here
    mapping = renames(sys.argv[2], here) if len(sys.argv) > 2 else {}
    print(report(tree / "doa", layer_index(LAYERS), mapping))
