#!/usr/bin/env bash
# The Python client (src/python/cohort) against real cohortd processes: a
# throwaway 3-node cluster (alpha and beta at site hq, gamma at plant) on
# 127.0.0.1, as in test_node_cli.sh. The protobuf modules are generated for
# this run into the throwaway directory (python3 -m cohort.proto), never
# taken from the source tree. Each case is a function of
# tests/cli/python/client_cases.py run in its own python3 process; the last
# one stops gamma.
#
# Needs Debian's python3 with python3-zmq, python3-protobuf and
# protobuf-compiler (deploy/deps.sh test). $COHORT_PYTHON picks another
# interpreter; the default is /usr/bin/python3, the one Debian's packages are
# for (a python3 earlier on PATH, e.g. pyenv's, would not see them).
set -euo pipefail
# shellcheck source=tests/cli/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_programs "$COHORTCTL" "$COHORTD"

PY=${COHORT_PYTHON:-/usr/bin/python3}
CASES=$COHORT_SRC/tests/cli/python/client_cases.py
if ! "$PY" -c 'import zmq, google.protobuf' 2>/dev/null || ! command -v protoc >/dev/null; then
    echo "FAIL: $PY needs python3-zmq and python3-protobuf, and protoc (protobuf-compiler): run deploy/deps.sh test" >&2
    exit 1
fi

# The generated modules, made for this run.
PB=$CLI_TMP/pb
PYTHONPATH=$COHORT_SRC/src/python "$PY" -m cohort.proto "$PB" >/dev/null
export PYTHONPATH=$COHORT_SRC/src/python:$PB
export XDG_CACHE_HOME=$CLI_TMP/cache # nothing generated lands in ~/.cache
export PYTHONDONTWRITEBYTECODE=1     # nor __pycache__ in the source tree

NAMES=(alpha beta gamma)
declare -A SITE=([alpha]=hq [beta]=hq [gamma]=plant)
# shellcheck source=tests/cli/nodes.sh
source "$(dirname "${BASH_SOURCE[0]}")/nodes.sh"

# ---- the cluster ----

nodes_make
nodes_start_all
nodes_wait_up || exit 1

export API_ALPHA=${API[alpha]} API_BETA=${API[beta]} API_GAMMA=${API[gamma]}
export CONFIG_BETA=${DIR[beta]}/node.yaml GAMMA_PID=${DIR[gamma]}/pid

# py CASE: one case of client_cases.py, in the case's directory.
py() {
    # shellcheck disable=SC2034 # read by fail (lib.sh)
    CLI_LAST_CMD="$PY $CASES $1"
    run "$PY" "$CASES" "$1"
    [[ $RC == 0 ]] || fail "python case failed"
}

generated_code_matches_the_runtime() { py "${FUNCNAME[0]}"; }
unreachable_node_raises_node_lost() { py "${FUNCNAME[0]}"; }
heartbeats_are_swallowed_and_silence_means_a_lost_node() { py "${FUNCNAME[0]}"; }
closed_api_is_told_at_once_and_bye_is_sent() { py "${FUNCNAME[0]}"; }
bye_is_what_close_sends() { py "${FUNCNAME[0]}"; }
status_peers_and_members_describe_the_cluster() { py "${FUNCNAME[0]}"; }
send_reaches_a_python_subscriber_on_the_other_node() { py "${FUNCNAME[0]}"; }
publish_reaches_subscribers_and_unsubscribe_stops_it() { py "${FUNCNAME[0]}"; }
request_to_a_service_served_by_python() { py "${FUNCNAME[0]}"; }
request_to_cohortctl_serve_echo() { py "${FUNCNAME[0]}"; }
example_echo_serves_and_says_bye() { py "${FUNCNAME[0]}"; }
bad_requests_get_the_nodes_error() { py "${FUNCNAME[0]}"; }
events_see_a_member_leave_and_clients_of_a_stopped_node_are_told() { py "${FUNCNAME[0]}"; }

run_case generated_code_matches_the_runtime
run_case unreachable_node_raises_node_lost
run_case heartbeats_are_swallowed_and_silence_means_a_lost_node
run_case closed_api_is_told_at_once_and_bye_is_sent
run_case bye_is_what_close_sends
run_case status_peers_and_members_describe_the_cluster
run_case send_reaches_a_python_subscriber_on_the_other_node
run_case publish_reaches_subscribers_and_unsubscribe_stops_it
run_case request_to_a_service_served_by_python
run_case request_to_cohortctl_serve_echo
run_case example_echo_serves_and_says_bye
run_case bad_requests_get_the_nodes_error
run_case events_see_a_member_leave_and_clients_of_a_stopped_node_are_told
finish
