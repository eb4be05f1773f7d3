"""The three glob dialects (Ruby fnmatch, include:local wildcards, doublestar) and glob_tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from localci.globs import (
    doublestar_match,
    fnmatch_ruby,
    glob_tree,
    include_wildcard_match,
    project_relative_pattern,
)

FNMATCH_CASES = [
    # `*` stays inside a segment, dot files included (FNM_DOTMATCH)
    ("*", "README.md", True),
    ("*", "dave/.profile", False),
    ("*/*", "dave/.profile", True),
    ("*", ".env", True),
    ("*.md", "docs/a.md", False),
    ("*.MD", "a.md", False),
    ("a/*", "a/", True),
    ("a/*/c", "a//c", True),
    ("c*", "cats", True),
    ("c*t", "c/a/b/t", False),
    # `**/` = zero or more directories; `**` elsewhere is a plain `*`
    ("**/foo", "foo", True),
    ("**/foo", "a/b/c/foo", True),
    ("**/foo", "/a/b/c/foo", True),
    ("**/foo", "a/.b/c/foo", True),
    ("**/*.rb", "main.rb", True),
    ("src/**/*.py", "src/a.py", True),
    ("src/**/*.py", "src/x/y/a.py", True),
    ("src/**/*.py", "srcx/a.py", False),
    ("a/**/b", "a/b", True),
    ("a/**/**/b", "a/x/b", True),
    ("docs/**", "docs/a", True),
    ("docs/**", "docs/a/b", False),
    ("docs/**/*", "docs/a/b", True),
    ("**", "a/b", False),
    ("**", "a", True),
    ("**.rb", "lib/a.rb", False),
    ("**.rb", "a.rb", True),
    ("**/*", ".gitlab-ci.yml", True),
    # `?` and classes never match `/`
    ("c?t", "cat", True),
    ("c??t", "cat", False),
    ("a?b", "a/b", False),
    ("ca[a-z]", "cat", True),
    ("ca[^t]", "cat", False),
    ("ca[!t]", "cab", True),
    ("a[/]b", "a/b", False),
    ("[a-z]*", "Abc", False),
    ("[[]", "[", True),
    ("[\\]]", "]", True),
    ("[]]", "]", False),  # Ruby: `[]` is an empty class that never matches
    ("[!]", "x", True),
    ("[z-a]", "a", True),  # Ruby checks both endpoints literally
    ("[z-a]", "m", False),
    ("[abc", "a", False),  # unterminated class never matches
    # escapes
    ("\\?", "?", True),
    ("\\?", "x", False),
    ("a\\*b", "a*b", True),
    ("a\\*b", "axb", False),
    ("\\a", "a", True),
    ("[\\?]", "?", True),
    # FNM_EXTGLOB braces
    ("c{at,ub}s", "cats", True),
    ("c{at,ub}s", "cubs", True),
    ("c{at,ub}s", "cabs", False),
    ("*.{yml,yaml}", ".gitlab-ci.yml", True),
    ("{a,{b,c}}.txt", "c.txt", True),
    ("{src,lib}/**/*.rb", "lib/x.rb", True),
    ("{*.md,docs/**/*}", "docs/a/b.txt", True),
    ("\\{a,b\\}", "{a,b}", True),
    ("{a,b", "a", False),  # unbalanced `{`: Ruby expands to nothing
    ("{a,b", "{a,b", False),
    ("a}", "a}", True),
    ("{}", "", True),
    ("x{,y}", "x", True),
    # unicode and plain paths
    ("*.txt", "\u00fcn\u00ef.txt", True),
    ("?", "\u00fc", True),
    ("Dockerfile", "Dockerfile", True),
    ("Dockerfile", "sub/Dockerfile", False),
]

INCLUDE_CASES = [
    ("configs/*.yml", "configs/a.yml", True),
    ("configs/*.yml", "configs/x/a.yml", False),
    ("configs/**.yml", "configs/a.yml", True),
    ("configs/**.yml", "configs/x/y/a.yml", True),
    ("configs/**/*.yml", "configs/a.yml", False),
    ("configs/**/*.yml", "configs/x/a.yml", True),
    ("/configs/*.yml", "configs/a.yml", True),
    ("*.yml", "a.yml", True),
    ("*.yml", "x/a.yml", False),
    ("**", "a/b.yml", True),
    ("**/*.yml", "a.yml", False),
    ("configs/[ab].yml", "configs/a.yml", False),
    ("configs/[ab].yml", "configs/[ab].yml", True),
    ("configs/?.yml", "configs/a.yml", False),
    ("configs/{a,b}.yml", "configs/a.yml", False),
    ("a.yml", "a.yml", True),
    ("a.yml", "xa.yml", False),
    ("a.yml", "a.yml.bak", False),
    ("ci/*.yml", "ci/.hidden.yml", True),
    ("ci/*/*.yml", "ci/x/a.yml", True),
    ("ci.*", "ci.yml", True),
    ("ci.*", "cixyml", False),
]

DOUBLESTAR_CASES = [
    ("**", "a", True),
    ("**", "a/b/c", True),
    ("**/*.txt", "a.txt", True),
    ("**/*.txt", "x/y/a.txt", True),
    ("**/*.txt", "x/a.md", False),
    ("build/**", "build", True),
    ("build/**", "build/a/b", True),
    ("build/**", "buildx/a", False),
    ("build/**/", "build", True),
    ("build/**/", "build/a", False),
    ("build/**/", "build/a/", True),
    ("build/", "build", False),
    ("build/", "build/", True),
    ("build", "build", True),
    ("build", "build/x", False),
    ("*.txt", ".hidden.txt", True),
    ("*.txt", "a/b.txt", False),
    ("a/*/c", "a/b/c", True),
    ("a/*/c", "a/b/x/c", False),
    ("a/*", "a", False),
    ("a*", "a", True),
    ("a/**/c", "a/c", True),
    ("a/**/c", "a/b/x/c", True),
    ("**/node_modules/**", "node_modules", True),
    ("**/node_modules/**", "x/node_modules/y/z", True),
    ("dir/**/*.log", "dir/.hidden/x.log", True),
    ("a**", "abc", True),
    ("a**", "a/b", False),
    ("**.txt", "b.txt", True),
    ("**.txt", "a/b.txt", False),
    ("?.txt", "a.txt", True),
    ("?.txt", "ab.txt", False),
    ("a?b", "a/b", False),
    ("[ab].txt", "a.txt", True),
    ("[ab].txt", "c.txt", False),
    ("[!ab].txt", "c.txt", True),
    ("[^ab].txt", "a.txt", False),
    ("[a-c].txt", "b.txt", True),
    ("[a-].txt", "-.txt", True),
    ("[z-a]", "z", True),  # doublestar: z compared first, the reversed range matches nothing
    ("[z-a]", "a", False),
    ("{a,b}.txt", "b.txt", True),
    ("{a,b}.txt", "c.txt", False),
    ("{a,b/c}/d", "b/c/d", True),
    ("x/{a,{b,c}}", "x/c", True),
    ("{build,dist}/**", "dist/x/y", True),
    ("\\*.txt", "*.txt", True),
    ("\\*.txt", "a.txt", False),
    ("*/", "a/", True),
    # the rest of the pattern must literally be "", "*", "**", "/**", "**/" or "/**/"
    ("a*/**", "a", False),
    ("a*/**", "ab", True),
    ("a***", "a", False),
    ("a***", "ab", True),
    ("**/**", "", False),
    # malformed patterns match nothing (the runner ignores them)
    ("[]", "x", False),
    ("[a", "a", False),
    ("{a,b", "a", False),
    ("a\\", "a", False),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), FNMATCH_CASES)
def test_fnmatch_ruby(pattern: str, path: str, expected: bool) -> None:
    assert fnmatch_ruby(pattern, path) is expected


@pytest.mark.parametrize(("pattern", "path", "expected"), INCLUDE_CASES)
def test_include_wildcard(pattern: str, path: str, expected: bool) -> None:
    assert include_wildcard_match(pattern, path) is expected


@pytest.mark.parametrize(("pattern", "path", "expected"), DOUBLESTAR_CASES)
def test_doublestar(pattern: str, path: str, expected: bool) -> None:
    assert doublestar_match(pattern, path) is expected


def test_tables_are_large_enough() -> None:
    assert len(FNMATCH_CASES) >= 40
    assert len(INCLUDE_CASES) >= 15
    assert len(DOUBLESTAR_CASES) >= 25


def test_brace_explosion_is_refused() -> None:
    with pytest.raises(ValueError, match="alternatives"):
        fnmatch_ruby("{a,b}" * 13, "a")


def test_many_paths_against_many_patterns() -> None:
    paths = [f"src/pkg{i % 50}/mod{i}.py" for i in range(5000)]
    patterns = [f"src/pkg{i}/**/*.py" for i in range(50)]
    hits = sum(fnmatch_ruby(p, path) for p in patterns for path in paths)
    assert hits == 5000


# ---- glob_tree ---------------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in (
        "a.txt",
        ".env",
        "build/out.bin",
        "build/sub/deep.txt",
        "build/.cache/x",
        "docs/readme.md",
    ):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
    os.symlink(tmp_path / "build", tmp_path / "link")
    os.symlink(tmp_path / "a.txt", tmp_path / "linkfile")
    return tmp_path


BUILD_ALL = [
    "build",
    "build/.cache",
    "build/.cache/x",
    "build/out.bin",
    "build/sub",
    "build/sub/deep.txt",
]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("*.txt", ["a.txt"]),
        ("*", [".env", "a.txt", "build", "docs", "link", "linkfile"]),
        ("build", ["build"]),
        ("build/", ["build"]),
        ("./build", ["build"]),
        ("build/**", BUILD_ALL),
        ("build/**/", BUILD_ALL),
        ("**/*.txt", ["a.txt", "build/sub/deep.txt"]),
        ("build/*/deep.txt", ["build/sub/deep.txt"]),
        ("{a.txt,docs}", ["a.txt", "docs"]),
        ("docs/*.md", ["docs/readme.md"]),
        ("build/.cache/*", ["build/.cache/x"]),
        ("link", ["link"]),
        ("link/**", ["link"]),
        ("link/out.bin", []),
        ("nothing/*", []),
        ("a.txt/x", []),
        (".", ["."]),
        ("./", ["."]),
    ],
)
def test_glob_tree(tree: Path, pattern: str, expected: list[str]) -> None:
    assert glob_tree(tree, pattern) == expected


def test_glob_tree_everything_without_following_symlinks(tree: Path) -> None:
    assert glob_tree(tree, "**") == sorted(
        [".env", "a.txt", *BUILD_ALL, "docs", "docs/readme.md", "link", "linkfile"]
    )


@pytest.mark.parametrize("pattern", ["../x", "/etc/passwd", "a/../b", "build/[", "{a,b"])
def test_glob_tree_refuses(tree: Path, pattern: str) -> None:
    with pytest.raises(ValueError, match=r"absolute|'\.\.'|invalid glob"):
        glob_tree(tree, pattern)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("/p/public", "public"),
        ("public/", "public"),
        ("./x/*.txt", "x/*.txt"),
        ("/p/a/../b/*.txt", "b/*.txt"),
        ("/p/", "."),
        ("*.txt", "*.txt"),
        ("dist/**", "dist/**"),
    ],
)
def test_project_relative_pattern(pattern: str, expected: str) -> None:
    assert project_relative_pattern(Path("/p"), pattern) == expected


# "/p" itself splits as base "/" + "p" (doublestar.SplitPattern), so the runner refuses it too.
@pytest.mark.parametrize("pattern", ["../x", "/other/x", "/x", "/p/../q/*", "/p"])
def test_project_relative_pattern_outside(pattern: str) -> None:
    with pytest.raises(ValueError, match="not inside the project"):
        project_relative_pattern(Path("/p"), pattern)
