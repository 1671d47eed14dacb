"""PyYAML's parser errors in plain words, for config.py's messages."""

from __future__ import annotations

import yaml


def plain_yaml_error(e: yaml.MarkedYAMLError) -> str:
    """PyYAML's parser terms ("expected <block end>, but found '?'") in plain words."""
    problem, context = e.problem or "", e.context or ""
    since = f" at line {e.context_mark.line + 1}" if e.context_mark else ""
    if problem.startswith("expected <block end>"):
        return (f"this line is indented differently from the lines above it (the block that starts{since}); "
                "keys and '- ' items of one list or mapping must start in the same column")
    if problem.startswith("found character '\\t'"):
        return "a tab character; YAML indents with spaces only"
    if problem.startswith("mapping values are not allowed"):
        return "a ':' where no key can start; check the indentation, or quote text that contains ': '"
    if "quoted scalar" in context:
        return f"the quoted text opened{since} is not closed"
    if problem.startswith(("expected ',' or ']'", "expected ',' or '}'")):
        bracket, kind = ("]", "list") if "]" in problem else ("}", "mapping")
        return f"the {kind} opened{since} is not closed with '{bracket}'"
    if problem.startswith("could not find expected ':'"):
        where = f"line {e.context_mark.line + 1}" if e.context_mark else "a line"
        return f"{where} has no ':' after its key (write 'key: value', or '- name' for a list item)"
    if "another document" in problem:
        return "a second YAML document ('---'); the file must hold one"
    if "<stream end>" in problem:
        return "the file ends where a value was expected (is a '[' or '{' not closed?)"
    if problem.startswith("found undefined alias"):
        return f"{problem[len('found '):]} (an '*name' needs a '&name' above it)"
    if context:  # PyYAML reads "<context>, <problem>", e.g. "while parsing a flow node, expected ..."
        return f"{context}{since}, {problem}" if problem else context
    return problem or "syntax error"
