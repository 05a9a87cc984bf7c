"""The package's shape: no import cycle among workbench's parts, counting imports inside functions too (an import
tucked into a function to dodge a cycle is still a cycle), and one copy of the rules for reading raw values."""
import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "workbench"


def _part(module: str) -> str | None:
    """workbench.data.clean → workbench.data; workbench.cli → workbench.cli; the root package itself → None."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else None


def _imports(path: Path, module: str):
    """(imported module, line) for every import of a workbench module in the file, wherever it is."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from ((a.name, node.lineno) for a in node.names if a.name.startswith("workbench."))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == "workbench":
            if node.module == "workbench":  # from workbench import compute, kinds
                yield from ((f"workbench.{a.name}", node.lineno) for a in node.names)
            else:
                yield node.module, node.lineno


def _graph():
    edges = defaultdict(dict)
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        src = _part(module)
        if src is None:  # workbench/__init__.py assembles the parts (and registers every model kind): not a part
            continue
        for target, line in _imports(path, module):
            dst = _part(target)
            if dst is not None and dst != src:
                edges[src].setdefault(dst, f"{path.relative_to(ROOT)}:{line}")
    return edges


def _cycle(edges) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in edges.get(node, {}):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_among_the_parts_of_workbench_even_inside_functions():
    edges = _graph()
    cycle = _cycle(edges)
    where = [f"{a} → {b} ({edges[a][b]})" for a, b in zip(cycle, cycle[1:])] if cycle else []
    assert cycle is None, "import cycle: " + "; ".join(where)


def test_registry_imports_no_model_kind():
    """Packages look kinds up by name; the kinds register themselves (compress, ensemble, decompose, the zoo)."""
    edges = _graph()
    assert not {"workbench.compress", "workbench.ensemble", "workbench.decompose"} & set(edges.get("workbench.registry", {}))


def test_one_copy_of_the_missing_spellings_and_number_patterns():
    owner = PACKAGE / "data" / "columns.py"
    rules = [re.compile(r"""["']nil["']"""), re.compile(r"""["']#n/a["']"""), re.compile(r"\[\\\$€£¥\]"),
             re.compile(r"\(\?<=\\d\),\(\?=\\d\{3\}")]
    copies = [f"{p.relative_to(ROOT)}: {r.pattern}" for p in PACKAGE.rglob("*.py") if p != owner
              for r in rules if r.search(p.read_text())]
    assert not copies, copies
    assert all(r.search(owner.read_text()) for r in rules)
