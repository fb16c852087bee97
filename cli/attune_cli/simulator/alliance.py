"""`alliance.rupture`: score drops (strict and lenient), PSQ reports, repair, and amendments."""

from __future__ import annotations

import statistics
from datetime import date, datetime

from attune_cli.simulator.ledger import (
    FIRE_MIN_DROP,
    K_MIN,
    LENIENT_DROP,
    QUIET_MAX_DROP,
    QUIET_MAX_DROP_WITH_CONCERN,
    REPAIR_MARGIN,
    REPAIR_WINDOW,
    RUPTURE,
    STRICT_DROP,
    WINDOW,
    Alert,
    AlertLedger,
    Point,
    Response,
    Track,
    rounded,
)
from attune_cli.simulator.scoring import PSQ_REPAIR_MIN, PSQ_TENSION_MIN, SD_FLOOR, MarginError, Score, score


class AllianceRules(AlertLedger):
    """The alliance series of one episode (one per instrument) and the rupture rule over them."""

    def __init__(self, episode: int, opened_on: date) -> None:
        super().__init__(episode, opened_on)
        self.series: dict[str, list[Point]] = {}

    def _append(self, r: Response, s: Score, concern: bool) -> Point:
        series = self.series.setdefault(r.instrument, [])
        if series and series[-1].session_at >= r.session_at:
            raise ValueError("the simulator writes each alliance series in session order")
        point = Point(r.response_id, r.session_at, s.value, concern)
        series.append(point)
        return point

    def _stats(self, instrument: str, point: Point) -> tuple[float, float, float] | None:
        """(mu, sd_eff, drop) of a point against the up to 5 scores before it; None below k_min."""
        series = self.series[instrument]
        earlier = [p.value for p in series[: series.index(point)]]
        if len(earlier) < K_MIN:
            return None
        window = earlier[-WINDOW:]
        mu = statistics.fmean(window)
        sd_eff = max(statistics.stdev(window), SD_FLOOR[instrument])
        return mu, sd_eff, (mu - point.value) / sd_eff

    def _position(self, instrument: str, point: Point) -> int:
        return self.series[instrument].index(point) + 1

    def _alliance(self, points: list[tuple[Response, Point]]) -> None:
        alert = self.open.get(RUPTURE)
        if alert is not None:
            self._track_repair(alert, points)
        alert = self.open.get(RUPTURE)
        firing: list[tuple[Response, Point, tuple[float, float, float]]] = []
        for r, p in points:
            stats = self._stats(r.instrument, p)
            if stats is None:
                continue
            drop = stats[2]
            if alert is not None:
                if drop >= STRICT_DROP or (drop >= LENIENT_DROP and p.concern):
                    alert.triggers.append(r.response_id)  # adds evidence to the open alert
            elif drop >= FIRE_MIN_DROP:
                firing.append((r, p, stats))
            elif drop > (QUIET_MAX_DROP_WITH_CONCERN if p.concern else QUIET_MAX_DROP):
                raise MarginError(f"{r.instrument} drop {drop:.2f} is near a rupture criterion")
        if firing:
            r, p, (mu, sd_eff, drop) = firing[0]
            criteria = ["strict", "lenient"] if p.concern else ["strict"]
            evidence = {
                "instrument": r.instrument,
                "score": rounded(p.value),
                "mu": rounded(mu),
                "sd_eff": rounded(sd_eff),
                "drop": rounded(drop),
                "trough": rounded(p.value),
            }
            new = Alert(RUPTURE, "high", self.episode, r.response_id, "response", criteria, r.at, evidence)
            for fr, fp, fstats in firing:
                new.triggers.append(fr.response_id)
                new.tracks[fr.instrument] = Track(fstats[0], fp.value, self._position(fr.instrument, fp))
            self._raise(new)

    def _track_repair(self, alert: Alert, points: list[tuple[Response, Point]]) -> None:
        verdicts: set[tuple[str, int]] = set()
        for r, p in points:
            if alert.tracks:
                track = alert.tracks.get(r.instrument)
                if track is None:
                    continue
                n = self._position(r.instrument, p) - track.trough_position
                if p.value - track.trough < REPAIR_MARGIN[r.instrument]:
                    raise MarginError("a later score near or below the trough would move the trough")
                lo = hi = track.mu
            elif r.instrument in alert.psq_mu and alert.psq_session_at is not None:
                if p.session_at <= alert.psq_session_at:
                    continue
                n, (lo, hi) = 0, alert.psq_mu[r.instrument]
            else:
                continue
            margin = REPAIR_MARGIN[r.instrument]
            if p.value >= hi + margin:
                verdicts.add(("repaired", n))
            elif p.value <= lo - margin:
                verdicts.add(("below", n))
            else:
                raise MarginError(f"{r.instrument} score {p.value} is near the pre-rupture baseline")
        if not verdicts:
            return
        if len(verdicts) > 1:
            raise MarginError("the alliance series of one session disagree about repair")
        ((verdict, n),) = verdicts
        at = points[0][0].at
        if verdict == "repaired":
            if alert.unrepaired or n > REPAIR_WINDOW:
                raise MarginError("a recovery after the repair window: readings differ on what it means")
            extra = {"sessions_after_trough": n} if alert.tracks else {}
            self._resolve(alert, "repaired", at, repair_response_id=points[0][0].response_id, **extra)
        elif alert.tracks and n >= REPAIR_WINDOW and not alert.unrepaired:
            alert.unrepaired = True
            alert.evidence["unrepaired"] = True

    def _psq(self, r: Response, s: Score) -> None:
        fires = s.rupture_reported and s.tension >= PSQ_TENSION_MIN
        alert = self.open.get(RUPTURE)
        if fires and alert is not None:
            alert.triggers.append(r.response_id)
            if "psq" not in alert.criteria:
                alert.criteria.append("psq")
        elif fires:
            evidence = {"instrument": "PSQ", "tension": s.tension, "resolution": s.resolution}
            new = Alert(RUPTURE, "high", self.episode, r.response_id, "response", ["psq"], r.at, evidence)
            new.triggers, new.psq_session_at = [r.response_id], r.session_at
            new.psq_mu = self._baseline_bands(r.session_at)
            evidence["mu"] = {name: rounded(hi) for name, (_, hi) in new.psq_mu.items()}
            self._raise(new)
        elif (
            alert is not None
            and alert.psq_session_at is not None
            and not alert.tracks
            and r.session_at > alert.psq_session_at
            and s.resolution >= PSQ_REPAIR_MIN
        ):
            self._resolve(alert, "repaired", r.at, repair_response_id=r.response_id, in_session_repair=True)

    def _baseline_bands(self, session_at: datetime) -> dict[str, tuple[float, float]]:
        """Per series, every `mu` a reader could call a PSQ rupture's baseline (windows ending before it)."""
        bands = {}
        for name, series in self.series.items():
            before = [p.value for p in series if p.session_at < session_at]
            candidates = [
                statistics.fmean(before[:end][-WINDOW:])
                for end in (len(before), len(before) - 1)
                if end >= K_MIN
            ]
            if candidates:
                bands[name] = (min(candidates), max(candidates))
        if not bands:
            raise MarginError("a PSQ rupture without an alliance baseline cannot be repaired by score")
        return bands

    def amendment(self, r: Response) -> None:
        """An amended response replaces its original; decisions that depended on it are re-judged."""
        if r.instrument not in SD_FLOOR:
            raise ValueError("the simulator only amends alliance responses")
        s = score(r.instrument, r.items)
        point = next(p for p in self.series[r.instrument] if p.response_id == r.response_id)
        point.value = s.value
        if r.instrument == "SRS":
            point.concern = s.concern
        stats = self._stats(r.instrument, point)
        drop = -1.0 if stats is None else stats[2]
        quiet = drop <= (QUIET_MAX_DROP_WITH_CONCERN if point.concern else QUIET_MAX_DROP)
        alert = self.open.get(RUPTURE)
        if alert is not None and r.response_id in alert.triggers:
            if drop >= FIRE_MIN_DROP:
                return
            if not quiet:
                raise MarginError("an amended trigger lands near the rupture criterion")
            if alert.triggers != [r.response_id]:
                raise MarginError("other responses still support the alert: the simulator avoids this")
            self._resolve(alert, "false_positive", r.at, amended_response_id=r.response_id)
        elif not quiet:
            raise MarginError("an amendment would create a rupture the original did not show")
