"""Architecture figures: the import graph between layers, and where the code is hard to find one's way in.

Run from the repository root:  .venv/bin/python bench/architecture.py [--json]

Prints, for the first-party packages:
  layers     imports between the top-level packages (who imports whom), back-edges against the
             intended order, and cycles between packages
  reach-ins  imports of another app's module that is not its public face (services, selectors,
             contracts, the app package itself)
  typing     `type: ignore` comments; functions mypy does not check (unannotated `def`s)
  size       functions over 60 lines, the largest modules
  duplicates pairs reported by the `duplicates` tool, when it is on the PATH
Figures, not a test: compare two checkouts by running it in each.
"""

import argparse
import ast
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
# Intended order, bottom first. A package may import those before it, never one after it.
LAYERS = ["core", "accounts", "ingest", "scoring", "automations", "companies", "predictions", "leadpulse"]
PACKAGES = [name for name in LAYERS if (ROOT / name / "__init__.py").exists()]
# The apps between the bottom layer (open to all) and the wiring layer (imported by none).
APPS = [name for name in PACKAGES if (ROOT / name / "apps.py").exists() and name not in (LAYERS[0], LAYERS[-1])]
PUBLIC = ("services", "selectors", "contracts", "scoping")  # what another app may import
SKIP_PARTS = {"migrations", "tests", ".venv", "bench"}


def python_files() -> list[Path]:
    return sorted(
        path
        for name in PACKAGES
        for path in (ROOT / name).rglob("*.py")
        if not SKIP_PARTS & set(path.relative_to(ROOT).parts)
    )


def graph_figures() -> dict:
    sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    edges: Counter = Counter()
    reach_ins: list[str] = []
    for importer in sorted(graph.modules):
        source = importer.split(".")[0]
        if ".migrations" in importer or source not in PACKAGES:
            continue
        for imported in graph.find_modules_directly_imported_by(importer):
            target = imported.split(".")[0]
            if target == source or target not in PACKAGES:
                continue
            edges[(source, target)] += 1
            parts = imported.split(".")
            # public: services, selectors, contracts through their package, not an inner module
            if source in APPS and target in APPS and len(parts) > 1 and (parts[1] not in PUBLIC or len(parts) > 2):
                reach_ins.append(f"{importer} -> {imported}")
    order = {name: i for i, name in enumerate(LAYERS)}
    back_edges = sorted(f"{a} -> {b} ({n})" for (a, b), n in edges.items() if order[a] < order[b])
    cycles = sorted(f"{a} <-> {b}" for (a, b) in edges if a < b and (b, a) in edges)
    return {
        "edges": {f"{a} -> {b}": n for (a, b), n in sorted(edges.items())},
        "backEdges": back_edges,
        "cycles": cycles,
        "reachIns": reach_ins,
    }


def code_figures() -> dict:
    ignores = 0
    unchecked: list[str] = []
    long_functions: list[tuple[int, str]] = []
    sizes: list[tuple[int, str]] = []
    for path in python_files():
        text = path.read_text()
        rel = str(path.relative_to(ROOT))
        ignores += text.count("type: ignore")
        sizes.append((len(text.splitlines()), rel))
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > 60:
                long_functions.append((length, f"{rel}:{node.lineno} {node.name}"))
            arguments = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
            annotated = node.returns is not None or any(a.annotation is not None for a in arguments)
            if not annotated:
                unchecked.append(f"{rel}:{node.lineno} {node.name}")
    return {
        "typeIgnores": ignores,
        "uncheckedFunctions": len(unchecked),
        "functionsOver60Lines": [f"{n} {where}" for n, where in sorted(long_functions, reverse=True)],
        "largestModules": [f"{n} {where}" for n, where in sorted(sizes, reverse=True)[:10]],
    }


def duplicate_pairs() -> str | None:
    if not shutil.which("duplicates"):  # the tool library's command; absent elsewhere
        return None
    out = subprocess.run(["duplicates", "--repo", str(ROOT), "--seconds", "60"], capture_output=True, text=True)
    return out.stdout.splitlines()[0] if out.stdout else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    figures = {**graph_figures(), **code_figures(), "duplicates": duplicate_pairs()}
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print("imports between packages:", ", ".join(f"{k} x{v}" for k, v in figures["edges"].items()))
    print(f"back-edges against {' < '.join(PACKAGES)}: {len(figures['backEdges'])}")
    for edge in figures["backEdges"]:
        print("   ", edge)
    print(f"cycles between packages: {len(figures['cycles'])}", *figures["cycles"])
    models = sum(line.endswith(".models") for line in figures["reachIns"])
    print(
        f"imports reaching another app's internals (not {'/'.join(PUBLIC)}): {len(figures['reachIns'])}"
        f" ({models} of them models)"
    )
    for line in figures["reachIns"]:
        print("   ", line)
    print(f"type: ignore comments: {figures['typeIgnores']}")
    print(f"functions without annotations (unchecked by mypy): {figures['uncheckedFunctions']}")
    print(f"functions over 60 lines: {len(figures['functionsOver60Lines'])}")
    for line in figures["functionsOver60Lines"]:
        print("   ", line)
    print("largest modules:")
    for line in figures["largestModules"]:
        print("   ", line)
    print("duplicated blocks:", figures["duplicates"])


if __name__ == "__main__":
    main()
