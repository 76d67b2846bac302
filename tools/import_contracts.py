"""An import-linter contract: apps reach each other only through their public face.

Another app's `services`, `selectors` and `contracts` (and accounts' `scoping`: the
project-scoped base classes) are its public face, a package through its `__init__` and not
its inner modules; its views, API, pages, forms, serializers, engine and tasks are its own.
Its `models` may be used only by the importing app's data layer (models for relations,
services and selectors for queries, serializers, forms and admin for the fields they
describe), never by views, API, pages, engine or tasks: those ask a selector or a service.
The wiring layer (`leadpulse/`) is not an app and may import anything.
"""

from dataclasses import dataclass

import grimp
from importlinter import Contract, ContractCheck, fields, output


@dataclass(frozen=True)
class Link:
    importer: str
    imported: str
    lines: tuple[int, ...]


class PublicFaceContract(Contract):
    type_name = "public_face"

    apps = fields.ListField(subfield=fields.StringField())
    public = fields.ListField(subfield=fields.StringField())
    data_layer = fields.ListField(subfield=fields.StringField())

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        # import-linter populates the fields with lists of strings (mypy sees the field objects)
        apps: set[str] = set(self.apps)  # type: ignore[call-overload]
        public: set[str] = set(self.public)  # type: ignore[call-overload]
        data_layer: set[str] = set(self.data_layer)  # type: ignore[call-overload]
        broken: list[Link] = []
        for importer in sorted(graph.modules):
            source = importer.split(".")
            if source[0] not in apps or "migrations" in source:
                continue
            for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                target = imported.split(".")
                if target[0] not in apps or target[0] == source[0] or len(target) == 1:
                    continue
                # a public package is public through its __init__, not its inner modules
                face = target[1] in public and len(target) == 2
                allowed = face or (target[1] == "models" and len(source) > 1 and source[1] in data_layer)
                if not allowed:
                    details = graph.get_import_details(importer=importer, imported=imported)
                    broken.append(Link(importer, imported, tuple(d["line_number"] for d in details)))
        return ContractCheck(kept=not broken, warnings=[], metadata={"broken": broken})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for link in check.metadata["broken"]:
            output.print_error(
                f"- {link.importer} -> {link.imported} (l.{', '.join(map(str, link.lines))})", bold=False
            )
            output.new_line()
        output.print_error(
            "Import another app's services, selectors or contracts instead (its models only from a data layer).",
            bold=False,
        )
