"""The model card: model.json, for people."""

from __future__ import annotations


_COMBINE_WHY = {
    "mean": "the mean of the fusion Transformer and the LightGBM stack: the two err differently (attention over "
            "token sequences vs trees on pooled statistics), so their mean is steadier than either on small "
            "training sets; the validation table below shows all three",
    "fusion": "the fusion Transformer alone",
    "stacking": "the LightGBM stack alone",
    "auto": "chosen per dimension on the validation speakers among the fusion Transformer, the LightGBM stack "
            "and their mean (the mean unless one alone does better on the validation clips, by the training "
            "config's `combine_metric`, by more than the margin); the table below says which and why",
}


def _overall_line(meta: dict) -> list[str]:
    if meta.get("overall_from") != "dimensions":
        return []
    r = meta["overall_rule"]
    fig = meta.get("val_metrics", {}).get("overall", {}).get("by_rule") or {}
    val = f"; on the validation clips SRCC {fig['srcc']:.3f}, RMSE {fig['rmse']:.3f}" \
        if fig.get("srcc") is not None and fig.get("rmse") is not None else ""
    weights = ", ".join(f"{k} {v:g}" for k, v in r["weights"].items()) or "none"
    lines = [f"- overall (`overall_from: dimensions`): the label rule applied to the clip's five dimension scores — "
             f"{r['clean']:g} less the worst weighted drop and {r['secondary']:g} of the others (weights below 1: "
             f"{weights}){val}"]
    direct = meta.get("overall_direct")
    if direct and direct.get("curve"):
        c = direct["curve"]
        worse = "higher" if direct["worse"] == 1 else "lower"
        points = ", ".join(f"{direct['worse'] * x:.3g} → {-y:+.2f}" for x, y in zip(c["x"], c["y"]))
        lines.append(f"  - plus the part the label rule charges a fault directly, beyond the dimensions (a stall), "
                     f"along {direct['column']} ({worse} is worse; 0 until {direct['start']:g}, then between these "
                     f"points, {direct['clips']} training clips; scoring/overall_direct.py): {points}")
    return lines


def _gate(meta: dict) -> str:
    below = meta.get("diagnostics_only_below")
    return "" if below is None else (f" A dimension's segments are listed only when the clip scores below {below:g} "
                                     "on it; the hand-crafted evidence (frozen picture, clipping, ...) always is.")


_WORSE_WHEN = {1: "higher", -1: "lower", 0: "farther from 0 (caps by magnitude)"}


def _ceiling_lines(meta: dict) -> list[str]:
    ceilings = meta.get("ceilings") or {}
    if not ceilings:
        return []
    lines = ["", "## Evidence ceilings", "",
             "A dimension's score never exceeds what the training clips reading at least as badly were labelled "
             "(their quantile below; stacking/ceilings.py). Caps from the worst reading up:", "",
             "| dimension | reading | worse when | quantile | caps (reading at least as bad as → cap) |", "|---|---|---|---|---|"]
    # Under `overall_from: dimensions` the score's overall is the label rule over the five dimension scores
    # (scorer.py), so overall's ceilings bound only the stack's own overall head, which that score never reads.
    # Applying them to the rule's overall was measured on version 19 (README, "Overall's ceilings"): it caps 15
    # of 52 clean training clips and lowers the out-of-fold SRCC, so they stay off and the card says so.
    unused = meta.get("overall_from") == "dimensions"
    for dim, cs in ceilings.items():
        for c in cs:
            steps = ", ".join(f"{t:.3g} → {'none' if cap is None else f'{cap:.2f}'}"
                              for t, cap in zip(c["thresholds"][:6], c["caps"][:6]))
            more = f" (+{len(c['caps']) - 6} steps)" if len(c["caps"]) > 6 else ""
            name = f"{dim} (not applied: see below)" if unused and dim == "overall" else dim
            worse = _WORSE_WHEN[c["worse"]]
            if c.get("start") is not None:  # a reading that counts only from a value on (stacking/ceilings.py)
                worse += f", counted from {c['start']:g} on"
            lines.append(f"| {name} | {c['column']} | {worse} | {c['quantile']:g} "
                         f"of ≥ {c['min_clips']} clips | {steps}{more} |")
    if unused and "overall" in ceilings:
        lines += ["", "This model scores overall from its five dimension scores by the label rule (`overall_from: "
                      "dimensions`): overall's ceilings bound only the stack's own overall head, which that score "
                      "does not read, so they do not cap the overall it gives. The dimensions' ceilings do, and "
                      "overall follows them through the rule."]
    return lines


def _ceiling_only_line(td: dict) -> list[str]:
    extra = td.get("ceiling_only")
    if not extra:
        return []
    return [f"- evidence ceilings only (no tree, level 2 or calibration saw them): {extra['clips']} more labelled clips "
            f"of the training speakers, stores: {', '.join(extra['stores'])}; labels: {', '.join(extra['labels'])}"]


def model_card(meta: dict) -> str:
    td = meta["training_data"]
    lines = [f"# {meta['name']} {meta['version']} — talkqa model card", "",
             meta.get("description") or "Scores talking-face videos on six 1–5 MOS dimensions with diagnostics.", "",
             f"- created {meta['created']} with talkqa {meta['talkqa_version']}; command: `{meta['command']}`",
             f"- final score per dimension (`combine: {meta['combine']}`): {_COMBINE_WHY[meta['combine']]}",
             *_overall_line(meta),
             f"- extraction config hash `{meta['extraction']['params_hash']}` (extract.yaml beside this card; scoring "
             "extracts with it)", "",
             "## Experts it needs", "", "| expert | version | weights hash | dim | modality |", "|---|---|---|---|---|"]
    for name, e in meta["experts"].items():
        lines.append(f"| {name} | {e['version']} | `{e['weights_hash']}` | {e['dim']} | {e['modality']} |")
    if not meta["experts"]:
        lines.append("| (none: hand-crafted features only) | | | | |")
    for name, e in meta["experts"].items():
        folds = (e.get("training_readings") or {}).get("out_of_fold")
        if folds:
            lines += ["", f"Training readings of {name} are out of fold: each clip was read by weights that never saw "
                      f"its speaker ({len(folds)} folds: {', '.join(f['weights'] for f in folds)}); scoring reads "
                      f"with the weights above."]
    lines += ["", "## Training data", "",
              f"- stores: {', '.join(td['stores'])}; labels: {', '.join(td['labels'])}",
              f"- {td['clips']} labelled clips of {td['speakers']} speakers; fusion trained on {td['fusion_train_clips']}, "
              f"early-stopped on {td['val_clips']} clips of {td['val_speakers']} held-out speakers; stacking fitted on all",
              "- label means: " + ", ".join(f"{k} {v:.2f}" for k, v in td["label_means"].items()),
              *_ceiling_only_line(td), "",
              "## Validation (held-out speakers)", "",
              "| dimension | n | fusion SRCC | stacking (OOF) SRCC | mean SRCC | RMSE fusion / stacking / mean |",
              "|---|---|---|---|---|---|"]
    fmt = lambda v: "–" if v is None else f"{v:.3f}"
    for dim, m in meta["val_metrics"].items():
        rmse = " / ".join(fmt(m[k].get("rmse")) for k in ("fusion", "stacking", "mean"))
        lines.append(f"| {dim} | {m['mean']['n']} | {fmt(m['fusion']['srcc'])} | {fmt(m['stacking']['srcc'])} | "
                     f"{fmt(m['mean']['srcc'])} | {rmse} |")
    if meta.get("combine_per_dimension"):
        lines += ["", "## Which score is shipped, per dimension (`combine: auto`)", "",
                  "| dimension | shipped | why |", "|---|---|---|"]
        for dim, c in meta["combine_per_dimension"].items():
            lines.append(f"| {dim} | {c['choice']} | {c['why']} |")
    lines += _ceiling_lines(meta)
    lines += ["", "## Diagnostics", "",
              "A 1 s window is flagged for a dimension when the fusion model's per-window problem probability exceeds "
              "the threshold below; adjacent flagged windows merge into one segment." + _gate(meta), "",
              "| dimension | threshold | chosen by |", "|---|---|---|"]
    for dim, t in meta["diagnostic_thresholds"].items():
        extra = f" (F0.5 {t['f05']:.2f} on {t['positive_windows']} of {t['windows']} windows)" if "f05" in t else ""
        lines.append(f"| {dim} | {t['threshold']:.2f} | {t['source']}{extra} |")
    lines += ["", "## Known limits", "",
              "- Labels of degrade corpora are pseudo-MOS from a monotone severity rule, not human ratings of "
              "these clips; the rule is fitted to published human ratings for AV offset, playback stalls and "
              "compression only (THQA-NTIRE, overall MOS).",
              "- Validation sets are small; treat the figures above as a sanity check, not a benchmark "
              "(`talkqa benchmark` cross-validates properly).",
              "- Without an audio track, lip_sync, audio_quality and consistency are not scored.", ""]
    return "\n".join(lines)
