"""A picture of a graph (``shoal draw``): its nodes with their agents and models, its edges and
label routes, which nodes may escalate to the planner (dotted) and the critical labels that go
there past any budget (red).

Drawn from the checked spec and the resolved escalation rules only: no model is loaded, so a
graph can be drawn on a machine that cannot run it. :func:`to_mermaid` writes Mermaid text;
:func:`render` draws an SVG or PNG with matplotlib (imported only there: it is not a dependency
of shoal, and there is no Mermaid or Graphviz renderer to rely on offline).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from shoal.agents.base import get_agent
from shoal.graphs.spec import END, ChainEdge, GraphSpec
from shoal.policies.escalation import CriticalRule, NodeRule, resolve_rules

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.patches import FancyBboxPatch

__all__ = [
    "CriticalMark",
    "Diagram",
    "DiagramEdge",
    "DiagramNode",
    "END_ID",
    "FORMATS",
    "PLANNER_ID",
    "START_ID",
    "build_diagram",
    "layers",
    "render",
    "to_mermaid",
]

FORMATS = ("mmd", "svg", "png")
"""What :func:`render` and ``shoal draw -o`` write, by file suffix."""

START_ID = "start_"
END_ID = "end_"
PLANNER_ID = "planner_"
"""Ids of the drawn nodes that are not graph nodes; graph nodes are ``n_<name>``, so a node
called ``planner`` or ``end`` (a Mermaid keyword) never clashes with them."""


@dataclass(frozen=True, slots=True)
class CriticalMark:
    """A critical label of a node's escalation rule: it goes to the planner (or is routed)
    past any budget when its probability reaches ``floor`` or a red flag fires."""

    label: str
    floor: float | None
    red_flags: bool
    action: Literal["escalate", "route"]

    def describe(self) -> str:
        when = [f"P ≥ {self.floor:g}"] if self.floor is not None else []
        if self.red_flags:
            when.append("red flags")
        how = "" if self.action == "escalate" else " (routed, no planner)"
        return f"critical: {self.label} {' or '.join(when) or '(no trigger)'}{how}"


@dataclass(frozen=True, slots=True)
class DiagramNode:
    id: str
    name: str
    agent: str
    model: str | None
    """``name (kind: model)`` of the node's model, or None."""
    escalation: tuple[str, ...] = ()
    """When the node wants the planner (``confidence < 0.49``, ``agent's flag``); empty: never
    (a masker, or a rule that turns everything off). Without a planner in the graph the node
    only flags its result and keeps its answer."""
    critical: tuple[CriticalMark, ...] = ()


@dataclass(frozen=True, slots=True)
class DiagramEdge:
    source: str
    target: str
    label: str | None = None
    kind: Literal["edge", "route", "steps", "escalation", "start"] = "edge"


@dataclass
class Diagram:
    """What is drawn: nodes in the spec's order, the edges between them and, when the graph has
    a planner, a planner node with one dotted edge from every node that may escalate."""

    name: str
    nodes: list[DiagramNode]
    edges: list[DiagramEdge]
    planner: str | None = None
    """The planner's model, ``name (kind: model)``; None when the graph has no ``escalation:``
    block."""
    has_end: bool = False
    extra_ids: dict[str, str] = field(default_factory=dict)
    """Labels of the drawn non-graph nodes (start, end, planner) by id."""


def _node_id(name: str) -> str:
    return END_ID if name == END else f"n_{name}"


def _model_text(spec: GraphSpec, name: str | None) -> str | None:
    if name is None:
        return None
    model = spec.models.get(name)
    if model is None:
        return name
    kind = str(getattr(model, "kind", "?"))
    # The catalog name (or the file's name) says which weights; never a URL, which may carry
    # a host or a key in its query.
    what = getattr(model, "model", None) or getattr(model, "path", None)
    if isinstance(what, str) and what:
        return f"{name} ({kind}: {Path(what).name})"
    return f"{name} ({kind})"


def _unplanned(node: DiagramNode) -> str:
    return f"flags (no planner in the graph): {', '.join(node.escalation)}"


def _escalation_text(rule: NodeRule) -> tuple[str, ...]:
    why: list[str] = []
    if rule.below is not None:
        why.append(f"confidence < {rule.below:g}")
    if rule.router is not None and rule.router.above is not None:
        why.append(f"P(wrong) ≥ {rule.router.above:g}")
    if rule.on_flag:
        why.append("agent's flag")
    if any(c.action == "escalate" for c in rule.critical.values()):
        why.append("critical")
    return tuple(why)


def _critical_marks(critical: dict[str, CriticalRule]) -> tuple[CriticalMark, ...]:
    return tuple(CriticalMark(label, crit.floor, crit.red_flags is not None, crit.action)
                 for label, crit in critical.items())


def _asks_planner(agent: str, config: dict[str, object]) -> bool:
    """Whether the node calls the planner itself (plan mode), as its agent class says; a node
    whose agent or config does not check has nothing to show (the diagram of a checked spec
    never meets one)."""
    cls = get_agent(agent)
    if cls is None:
        return False
    try:
        return cls.asks_planner(cls.Config.model_validate(config))
    except ValueError:
        return False


def build_diagram(spec: GraphSpec, base_dir: Path | None) -> Diagram:
    """The diagram of a checked spec (:func:`~shoal.graphs.loader.load_spec`); ``base_dir`` is
    the graph file's folder, where its escalation policy files are found."""
    rules = resolve_rules(spec.nodes, spec.escalation, base_dir)
    planner = spec.escalation.planner if spec.escalation is not None else None
    nodes: list[DiagramNode] = []
    edges: list[DiagramEdge] = []
    for name, node in spec.nodes.items():
        rule = rules.nodes.get(name)
        escalation: tuple[str, ...] = ()
        critical: tuple[CriticalMark, ...] = ()
        if rule is not None:
            critical = _critical_marks(rule.critical)
            if rule.active:
                escalation = _escalation_text(rule)
        if _asks_planner(node.agent, node.agent_config):
            escalation = (*escalation, "unsure split: plan mode")
        nodes.append(DiagramNode(_node_id(name), name, node.agent,
                                 _model_text(spec, node.model), escalation, critical))
    extra = {START_ID: "start"}
    edges.extend(DiagramEdge(START_ID, _node_id(e), kind="start") for e in spec.entries)
    has_end = False
    for edge in spec.edges:
        if isinstance(edge, ChainEdge):
            for sources, targets in edge.pairs():
                for source in sources:
                    for target in targets:
                        has_end |= target == END
                        edges.append(DiagramEdge(_node_id(source), _node_id(target)))
        else:
            # Labels that go to the same node share one arrow: "injection / off_topic".
            by_target: dict[str, list[str]] = defaultdict(list)
            for label, target in edge.route.items():
                by_target[target].append(label)
            for target, labels in by_target.items():
                has_end |= target == END
                edges.append(DiagramEdge(_node_id(edge.source), _node_id(target),
                                         " / ".join(labels), kind="route"))
            if edge.steps is not None:
                edges.append(DiagramEdge(_node_id(edge.source), _node_id(edge.steps.join),
                                         "several requests",
                                         kind="steps"))
    if has_end:
        extra[END_ID] = "end"
    planner_text = None
    if planner is not None:
        planner_text = _model_text(spec, planner)
        extra[PLANNER_ID] = f"planner: {planner_text}"
        edges.extend(DiagramEdge(n.id, PLANNER_ID, ", ".join(n.escalation), kind="escalation")
                     for n in nodes if n.escalation)
    return Diagram(spec.name, nodes, edges, planner_text, has_end, extra)


# --- Mermaid ------------------------------------------------------------------------------------


def _mm(text: str) -> str:
    """Text safe inside a quoted Mermaid label: quotes and markup as Mermaid's entity codes
    (labels are rendered as HTML; a route label or agent name is the graph author's text)."""
    out = text.replace("#", "#35;")
    for char, code in (('"', "#quot;"), ("<", "#lt;"), (">", "#gt;"), ("&", "#amp;")):
        out = out.replace(char, code)
    return out


def to_mermaid(diagram: Diagram) -> str:
    """A Mermaid ``flowchart``: labelled route arrows, a thick arrow from a splitter to the join
    of its steps, dotted arrows to the planner, critical nodes outlined in red with their floors
    in the box."""
    lines = ["---", f"title: {_mm(diagram.name)}", "---", "flowchart TB"]
    lines.append(f'  {START_ID}(("start"))')
    for node in diagram.nodes:
        parts = [f"<b>{_mm(node.name)}</b>", f"agent: {_mm(node.agent)}"]
        if node.model is not None:
            parts.append(f"model: {_mm(node.model)}")
        if diagram.planner is None and node.escalation:
            parts.append(_mm(_unplanned(node)))
        parts.extend(f"⚠ {_mm(mark.describe())}" for mark in node.critical)
        lines.append(f'  {node.id}["{"<br/>".join(parts)}"]')
    if diagram.has_end:
        lines.append(f'  {END_ID}(("end"))')
    if diagram.planner is not None:
        lines.append(f'  {PLANNER_ID}[["<b>planner</b><br/>model: {_mm(diagram.planner)}"]]')
    for edge in diagram.edges:
        if edge.kind == "escalation":
            arrow = f'-.->|"{_mm(edge.label)}"|' if edge.label else "-.->"
        elif edge.kind == "steps":
            arrow = f'==>|"{_mm(edge.label or "")}"|'
        elif edge.label:
            arrow = f'-->|"{_mm(edge.label)}"|'
        else:
            arrow = "-->"
        lines.append(f"  {edge.source} {arrow} {edge.target}")
    critical = [n.id for n in diagram.nodes if n.critical]
    lines.append("  classDef critical stroke:#d62728,stroke-width:3px")
    lines.append("  classDef planner fill:#f3e8fd,stroke:#7b3fa0,stroke-dasharray:4 3")
    if critical:
        lines.append(f"  class {','.join(critical)} critical")
    if diagram.planner is not None:
        lines.append(f"  class {PLANNER_ID} planner")
    escalations = [i for i, e in enumerate(diagram.edges) if e.kind == "escalation"]
    if escalations:
        lines.append(f"  linkStyle {','.join(map(str, escalations))} stroke:#7b3fa0")
    return "\n".join(lines) + "\n"


# --- layout -------------------------------------------------------------------------------------


def _back_edges(ids: Sequence[str], succ: dict[str, list[str]], roots: Iterable[str]
                ) -> set[tuple[str, str]]:
    """Edges that close a cycle (found by an iterative depth-first walk from the roots, then from
    any node not reached); layering ignores them so that a loop cannot stretch the drawing."""
    state: dict[str, int] = {}  # 1: on the walk's path, 2: done
    back: set[tuple[str, str]] = set()
    for root in [*roots, *ids]:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(succ.get(root, [])))]
        while stack:
            node, children = stack[-1]
            for child in children:
                if state.get(child) == 1:
                    back.add((node, child))
                elif child not in state:
                    state[child] = 1
                    stack.append((child, iter(succ.get(child, []))))
                    break
            else:
                state[node] = 2
                stack.pop()
    return back


def layers(diagram: Diagram) -> list[list[str]]:
    """The drawn ids (start, nodes, end; not the planner) in layers: each node one layer below
    its lowest predecessor (longest path from the start), nodes no edge reaches on top."""
    ids = [START_ID, *(n.id for n in diagram.nodes)] + ([END_ID] if diagram.has_end else [])
    succ: dict[str, list[str]] = defaultdict(list)
    for edge in diagram.edges:
        if edge.kind != "escalation" and edge.source != edge.target:
            succ[edge.source].append(edge.target)
    back = _back_edges(ids, succ, [START_ID])
    preds: dict[str, list[str]] = defaultdict(list)
    for source, targets in succ.items():
        for target in targets:
            if (source, target) not in back:
                preds[target].append(source)
    depth: dict[str, int] = {}

    def level(node: str) -> int:
        # Iterative: a long chain must not hit the recursion limit.
        todo = [node]
        while todo:
            current = todo[-1]
            missing = [p for p in preds[current] if p not in depth]
            if missing:
                todo.extend(missing)
                continue
            todo.pop()
            depth[current] = 1 + max((depth[p] for p in preds[current]), default=-1)
        return depth[node]

    by_layer: dict[int, list[str]] = defaultdict(list)
    for node in ids:
        by_layer[level(node)].append(node)
    return [by_layer[i] for i in sorted(by_layer)]


# --- matplotlib ---------------------------------------------------------------------------------

_FONT = 9.0
_TITLE_FONT = 10.5
_LINE_IN = 1.45 * _FONT / 72
_GAP_Y = 0.8
"""Inches between two layers' boxes: room for the escalation lane and a route label."""
_LANE = 0.17
"""Inches below a layer's lowest box where its escalation lanes run to the planner."""
_LABEL_BELOW_LANE = 0.27
_GAP_X = 0.35
_BACK_BEND = 0.4
"""How far an edge that goes back up (a loop) bends aside, as matplotlib's arc3 ``rad``."""
_ESCALATE = "#7b3fa0"
_CRITICAL = "#d62728"
_EDGE = "#444444"


@dataclass(frozen=True, slots=True)
class _Line:
    text: str
    color: str = "black"
    bold: bool = False


def _box_lines(node: DiagramNode, *, planned: bool) -> list[_Line]:
    lines = [_Line(node.name, bold=True), _Line(f"agent: {node.agent}", "#333333")]
    if node.model is not None:
        lines.append(_Line(f"model: {node.model}", "#333333"))
    if node.escalation:
        lines.append(_Line(f"→ planner: {', '.join(node.escalation)}", _ESCALATE) if planned
                     else _Line(_unplanned(node), "#777777"))
    lines.extend(_Line(f"⚠ {mark.describe()}", _CRITICAL, bold=True) for mark in node.critical)
    return lines


def _size(lines: Sequence[_Line], width_of: Callable[[_Line, float], float]
          ) -> tuple[float, float]:
    """A box's width and height in inches, for its lines at their font sizes."""
    widths = [width_of(line, _font_size(i, line)) for i, line in enumerate(lines)]
    return max(widths) + 0.3, len(lines) * _LINE_IN + 0.2


def _font_size(index: int, line: _Line) -> float:
    return _TITLE_FONT if line.bold and index == 0 else _FONT


@dataclass
class _Layout:
    pos: dict[str, tuple[float, float]]
    """Box centres in inches, y growing downwards; also the bend points of long edges."""
    bottoms: dict[str, float]
    """The bottom of each node's layer (its tallest box): where the layer's lanes run."""
    bends: dict[int, list[str]]
    """Per edge (index in ``Diagram.edges``) that skips layers, its bend point in each layer
    between: placed like a thin node, so the edge goes around the boxes it would cross."""


def _layout(diagram: Diagram, boxes: dict[str, tuple[float, float]]) -> _Layout:
    """Layers top to bottom; in a layer, each node under the mean of its predecessors, then
    pushed apart so boxes (and the bend points of long edges) do not overlap."""
    rows = layers(diagram)
    level = {node: i for i, row in enumerate(rows) for node in row}
    preds: dict[str, list[str]] = defaultdict(list)
    bends: dict[int, list[str]] = {}
    sizes = dict(boxes)
    for index, edge in enumerate(diagram.edges):
        if edge.kind == "escalation":
            continue
        first, last = level[edge.source], level[edge.target]
        chain = []
        for between in range(first + 1, last):
            bend = f"bend_{index}_{between}"
            rows[between].append(bend)
            sizes[bend] = (0.2, 0.0)
            chain.append(bend)
        if chain:
            bends[index] = chain
        hops = [edge.source, *chain, edge.target]
        for a, b in pairwise(hops):
            preds[b].append(a)
    pos: dict[str, tuple[float, float]] = {}
    bottoms: dict[str, float] = {}
    y = 0.0
    for row in rows:
        height = max(sizes[i][1] for i in row)
        y += height / 2
        wanted: list[tuple[float, int, str]] = []
        for order, node in enumerate(row):
            placed = [pos[p][0] for p in preds[node] if p in pos]
            wanted.append((sum(placed) / len(placed) if placed else 0.0, order, node))
        wanted.sort()
        # Spread the layer around its wanted centres: left to right, each box at least a gap
        # from the previous one, then the whole layer shifted back to its wanted mean.
        xs: list[float] = []
        for i, (want, _, node) in enumerate(wanted):
            if i == 0:
                xs.append(want)
                continue
            prev = wanted[i - 1][2]
            least = xs[-1] + sizes[prev][0] / 2 + _GAP_X + sizes[node][0] / 2
            xs.append(max(want, least))
        shift = sum(w for w, _, _ in wanted) / len(wanted) - sum(xs) / len(xs)
        for (_, _, node), x in zip(wanted, xs, strict=True):
            pos[node] = (x + shift, y)
            bottoms[node] = y + height / 2
        y += height / 2 + _GAP_Y
    return _Layout(pos, bottoms, bends)


def render(diagram: Diagram, path: Path, fmt: Literal["svg", "png"]) -> None:
    """Draw ``diagram`` into ``path`` as SVG or PNG: a layered layout from top to bottom, the
    planner as a rail on the right that every escalating node reaches by a dotted lane just
    below its box (the lanes run between layers, so they never cross a box)."""
    # matplotlib is optional (the dev extra has it); a graph never needs it to run. The object
    # API (Figure, not pyplot) keeps no global state and needs no GUI backend.
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    from matplotlib.path import Path as MplPath
    from matplotlib.textpath import TextPath

    def width_of(line: _Line, size: float) -> float:
        # The text's own outline, in points: boxes fit their text in any font matplotlib picks.
        font = FontProperties(weight="bold" if line.bold else "normal")
        return float(TextPath((0, 0), line.text, size=size, prop=font).get_extents().width) / 72

    texts = {n.id: _box_lines(n, planned=diagram.planner is not None) for n in diagram.nodes}
    for extra_id, label in diagram.extra_ids.items():
        if extra_id != PLANNER_ID:
            texts[extra_id] = [_Line(label, "#555555")]
    boxes = {i: _size(lines, width_of) for i, lines in texts.items()}
    layout = _layout(diagram, boxes)
    pos, bottoms = layout.pos, layout.bottoms
    left = min(pos[i][0] - boxes.get(i, (0.0, 0.0))[0] / 2 for i in pos)
    right = max(pos[i][0] + boxes.get(i, (0.0, 0.0))[0] / 2 for i in pos)
    bottom = max(pos[i][1] + boxes[i][1] / 2 for i in boxes)
    escalating = [e.source for e in diagram.edges if e.kind == "escalation"]
    planner_lines: list[_Line] = []
    rail = (0.0, 0.0, 0.0, 0.0)  # x, y of its centre, width, height
    if diagram.planner is not None and escalating:
        name, _, kind = diagram.planner.partition(" (")
        planner_lines = [_Line("planner", _ESCALATE, bold=True),
                         _Line(f"model: {name}", _ESCALATE)]
        if kind:
            planner_lines.append(_Line(f"({kind}", _ESCALATE))
        width, height = _size(planner_lines, width_of)
        lanes = [bottoms[i] + _LANE for i in escalating]
        top, low = min(lanes) - 0.2, max(lanes) + 0.2
        height = max(height, low - top)
        rail = (right + 0.9 + width / 2, (top + low) / 2, width, height)
        right = rail[0] + width / 2
        bottom = max(bottom, rail[1] + height / 2 + 0.3)  # and its caption below it
    margin = 0.3
    title_h = 0.45
    fig_w = right - left + 2 * margin
    fig_h = bottom + 2 * margin + title_h
    fig = Figure(figsize=(fig_w, fig_h), dpi=110)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(left - margin, right + margin)
    ax.set_ylim(bottom + margin, -margin - title_h)  # y grows downwards, as laid out
    ax.set_axis_off()
    ax.text(left, -title_h / 2 - margin / 2, f"graph {diagram.name}", fontsize=12,
            fontweight="bold", va="center", ha="left")

    patches: dict[str, FancyBboxPatch] = {}
    for node_id, lines in texts.items():
        x, y = pos[node_id]
        w, h = boxes[node_id]
        node = next((n for n in diagram.nodes if n.id == node_id), None)
        critical = node is not None and bool(node.critical)
        round_ = "round,pad=0,rounding_size=0.12" if node is not None else \
            "round,pad=0,rounding_size=0.16"
        patch = FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle=round_,
                               facecolor="#fff5f5" if critical else
                               ("#f7f7f7" if node is not None else "#eeeeee"),
                               edgecolor=_CRITICAL if critical else "#555555",
                               linewidth=2.2 if critical else 1.0, zorder=2)
        ax.add_patch(patch)
        patches[node_id] = patch
        _write_lines(ax, x, y - h / 2 + 0.1, lines)

    for index, edge in enumerate(diagram.edges):
        if edge.kind == "escalation":
            continue
        source, target = patches[edge.source], patches[edge.target]
        (x0, y0), (x1, y1) = pos[edge.source], pos[edge.target]
        via = [pos[b] for b in layout.bends.get(index, [])]
        if via:
            # Around the boxes of the layers it skips: down from the source, through its bend
            # points, into the target's top.
            points = [(x0, y0 + boxes[edge.source][1] / 2), *via,
                      (x1, y1 - boxes[edge.target][1] / 2)]
            ax.add_patch(FancyArrowPatch(
                path=MplPath(points, [MplPath.MOVETO] + [MplPath.LINETO] * (len(points) - 1)),
                arrowstyle="-|>", color=_EDGE, lw=1.1, mutation_scale=12, zorder=1))
            x1, y1 = via[0]  # the label goes on the first stretch
        else:
            back = y1 <= y0  # an edge closing a loop goes up: curve it aside
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                        arrowprops={"arrowstyle": "-|>", "color": _EDGE,
                                    "lw": 2.4 if edge.kind == "steps" else 1.1,
                                    "patchA": source, "patchB": target, "shrinkA": 1,
                                    "shrinkB": 1, "mutation_scale": 12,
                                    "connectionstyle":
                                        f"arc3,rad={_BACK_BEND if back else 0}"},
                        zorder=1)
        if edge.label:
            # On the arrow a little below its source's layer: the labels of one route fan out
            # there, apart from each other and below the escalation lanes.
            if y1 > y0:
                ly = bottoms[edge.source] + _LANE + _LABEL_BELOW_LANE
                lx = x0 + (x1 - x0) * (ly - y0) / (y1 - y0)
            else:
                # The middle of the arc3 curve: half its bend, across the chord (y is flipped
                # on the page, hence the signs).
                lx = (x0 + x1) / 2 + _BACK_BEND / 2 * (y0 - y1)
                ly = (y0 + y1) / 2 + _BACK_BEND / 2 * (x1 - x0)
            ax.text(lx, ly, edge.label, fontsize=_FONT - 0.5, ha="center", va="center",
                    color="#1f4e79", zorder=4,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "#9bb7d4",
                          "lw": 0.6})

    if planner_lines:
        rx, ry, rw, rh = rail
        ax.add_patch(FancyBboxPatch((rx - rw / 2, ry - rh / 2), rw, rh,
                                    boxstyle="round,pad=0,rounding_size=0.12",
                                    facecolor="#f3e8fd", edgecolor=_ESCALATE, linewidth=1.4,
                                    linestyle=(0, (4, 3)), zorder=2))
        _write_lines(ax, rx, ry - len(planner_lines) * _LINE_IN / 2, planner_lines)
        for node_id in escalating:
            x, y = pos[node_id]
            w, h = boxes[node_id]
            drop_x = x + w / 2 - 0.25
            lane_y = bottoms[node_id] + _LANE
            ax.plot([drop_x, drop_x, rx - rw / 2 - 0.08], [y + h / 2, lane_y, lane_y],
                    color=_ESCALATE, lw=1.2, ls=(0, (2, 2)), zorder=3, solid_capstyle="butt")
            ax.annotate("", xy=(rx - rw / 2, lane_y), xytext=(rx - rw / 2 - 0.2, lane_y),
                        arrowprops={"arrowstyle": "-|>", "color": _ESCALATE, "lw": 1.2,
                                    "mutation_scale": 11, "shrinkA": 0, "shrinkB": 0},
                        zorder=3)
        ax.text(rx, ry + rh / 2 + 0.12, "escalation (dotted)", fontsize=_FONT - 1,
                color=_ESCALATE, ha="center", va="top", style="italic")

    # No date and a fixed id salt: drawing the same graph twice gives the same file.
    metadata: dict[str, str | None] = {"Date": None} if fmt == "svg" else {"Software": None}
    if fmt == "svg":
        import matplotlib

        with matplotlib.rc_context({"svg.hashsalt": "shoal-draw"}):
            fig.savefig(path, format="svg", metadata=metadata)
    else:
        fig.savefig(path, format="png", metadata=metadata)


def _write_lines(ax: Axes, x: float, top: float, lines: Sequence[_Line]) -> None:
    for i, line in enumerate(lines):
        ax.text(x, top + (i + 0.5) * _LINE_IN, line.text, ha="center", va="center",
                fontsize=_font_size(i, line),
                fontweight="bold" if line.bold else "normal", color=line.color, zorder=3)
