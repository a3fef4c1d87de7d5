#!/usr/bin/env bash
# The log events and the metrics are documented in one place,
# config/README.md (its "Logs" and "Metrics" tables), and this keeps that
# place true: every event name the sources log must have a row, every row
# must name an event the sources still log, and every metric cohortd
# exports must be in the metrics table. Reads sources only; runs nothing.
# Perl, awk and backquoted Markdown in single quotes are meant literally.
# shellcheck disable=SC2016
set -euo pipefail
# shellcheck source=tests/cli/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

README=$COHORT_SRC/config/README.md

# The event names the sources log, one per line, sorted. Three kinds:
#  - COHORT_LOG(LEVEL, "event.name key=..."): the first word of the format
#    (adjacent literals joined); a name holding %s stays a pattern;
#  - node events, logged by node_event() as "%s node=.. reason=..": the
#    name literals passed to node_event(...) or picked in a `type = ...;`
#    statement before it.
src_events() {
    find "$COHORT_SRC/src" -name '*.c' -print0 | xargs -0 perl -0777 -ne '
        while (/COHORT_LOG\(\s*[^;]*?,\s*((?:"(?:[^"\\]|\\.)*"\s*)+)/g) {
            my $f = $1;
            $f =~ s/"\s*"//g;
            $f =~ s/^"//;
            my ($name) = split /[ "]/, $f;
            print "$name\n" if $name ne "%s";
        }
        while (/\bnode_event\s*\(([^;{}]*)\);/g) {
            my $args = $1;
            print "$1\n" while $args =~ /"([a-z]+\.[a-z_.]+)"/g;
        }
        while (/(?<![.\w])type\s*=\s*([^;{}]*);/g) {
            my $rhs = $1;
            print "$1\n" while $rhs =~ /"([a-z]+\.[a-z_.]+)"/g;
        }' | sort -u
}

# The section of README between "## TITLE" and the next "## ".
section() {
    awk -v t="## $1" '$0 == t { on = 1; next } /^## / { on = 0 } on' "$README"
}

# The event names in the Logs table's first column, one per line, sorted.
doc_events() {
    section Logs | awk -F'|' '/^\| `/ { print $2 }' | grep -o '`[^`]*`' | tr -d '`' | sort -u
}

# The metric family names metrics.c writes, sorted.
src_metrics() {
    grep -o '"cohort_[a-z0-9_]*' "$COHORT_SRC/src/daemon/metrics.c" | tr -d '"' | sort -u
}

doc_metrics() {
    section Metrics | awk -F'|' '/^\| `/ { print $2 }' | grep -o '`cohort_[a-z0-9_]*`' | tr -d '`' |
        sort -u
}

# ---- the extraction itself must see something (a broken regex is no pass) ----

extraction_finds_known_events() {
    local src doc e
    src=$(src_events)
    doc=$(doc_events)
    for e in daemon.started config.reload api.%s.failed member.%s member.up link.changed \
        roster.applied peer.dial bootstrap.cache_loaded discovery.found punch.ok relay.dropped; do
        grep -qxF -- "$e" <<<"$src" || CLI_LAST_CMD="" fail "the sources scan missed $e:
$src"
    done
    for e in daemon.started member.cut link.rung; do
        grep -qxF -- "$e" <<<"$doc" || CLI_LAST_CMD="" fail "the README scan missed $e"
    done
    (($(wc -l <<<"$src") >= 50)) || CLI_LAST_CMD="" fail "only $(wc -l <<<"$src") events found"
    [[ -n $(src_metrics) ]] || CLI_LAST_CMD="" fail "no metric found in metrics.c"
}

# ---- the contract ----

every_logged_event_has_a_row() {
    local doc missing="" e re_
    doc=$(doc_events)
    while read -r e; do
        if [[ $e == *%* ]]; then
            # api.%s.failed: some documented event must fill the pattern in
            re_="^$(sed -e 's/[.]/\\./g' -e 's/%[a-z]*/[a-z_]+/g' <<<"$e")\$"
            grep -Eq -- "$re_" <<<"$doc" || missing+=" $e"
        else
            grep -qxF -- "$e" <<<"$doc" || missing+=" $e"
        fi
    done < <(src_events)
    [[ -z $missing ]] || CLI_LAST_CMD="" fail "logged in src/ but not in config/README.md#logs:$missing"
}

every_row_names_a_logged_event() {
    local src patterns stale="" e p ok
    src=$(src_events)
    patterns=$(grep '%' <<<"$src" | sed -e 's/[.]/\\./g' -e 's/%[a-z]*/[a-z_]+/g' -e 's/.*/^&$/')
    while read -r e; do
        ok=0
        if grep -qxF -- "$e" <<<"$src"; then ok=1; fi
        if ((!ok)); then
            while read -r p; do
                [[ -n $p ]] && grep -Eq -- "$p" <<<"$e" && ok=1 && break
            done <<<"$patterns"
        fi
        ((ok)) || stale+=" $e"
    done < <(doc_events)
    [[ -z $stale ]] || CLI_LAST_CMD="" fail "in config/README.md#logs but logged nowhere in src/:$stale"
}

every_metric_has_a_row() {
    local doc missing="" stale="" m
    doc=$(doc_metrics)
    while read -r m; do
        grep -qxF -- "$m" <<<"$doc" || missing+=" $m"
    done < <(src_metrics)
    while read -r m; do
        src_metrics | grep -qxF -- "$m" || stale+=" $m"
    done <<<"$doc"
    [[ -z $missing ]] || CLI_LAST_CMD="" fail "exported but not in config/README.md#metrics:$missing"
    [[ -z $stale ]] || CLI_LAST_CMD="" fail "in config/README.md#metrics but not exported:$stale"
}

run_case extraction_finds_known_events
run_case every_logged_event_has_a_row
run_case every_row_names_a_logged_event
run_case every_metric_has_a_row
finish
