"""Domain vocabulary for Whisper: the words accreditation meetings are full of.

Whisper decodes better when it has seen a field's terms: they are given to it as an
*initial prompt* (text it takes as what came before), which biases spelling and
vocabulary without forcing anything. :data:`DEFAULT_TERMS` is the default list (from the
Ministry's letters and the glossary of Vietnamese accreditation); a dossier may replace
it with its own (institution names, programme names, people). :func:`initial_prompt`
makes the prompt, kept short: Whisper reads at most 224 prompt tokens and a long prompt
slows every window.
"""

from __future__ import annotations

from collections.abc import Iterable

DEFAULT_TERMS: tuple[str, ...] = (
    "kiểm định chất lượng giáo dục", "KĐCLGD", "tổ chức kiểm định", "Hội đồng KĐCLGD",
    "thẩm định", "tự đánh giá", "đánh giá ngoài", "đoàn đánh giá ngoài", "kiểm định viên",
    "minh chứng", "hồ sơ", "biên bản", "tiêu chuẩn", "tiêu chí", "chuẩn đầu ra",
    "chương trình đào tạo", "cơ sở giáo dục", "khảo sát sơ bộ", "khảo sát chính thức",
    "Bộ Giáo dục và Đào tạo", "Cục Quản lý chất lượng", "đảm bảo chất lượng",
    "cải tiến chất lượng", "báo cáo tự đánh giá", "giảng viên", "người học", "cựu người học",
    "nhà tuyển dụng", "các bên liên quan", "kế hoạch cải tiến",
)
MAX_PROMPT_CHARS = 400


def initial_prompt(terms: Iterable[str] | None, language: str | None) -> str | None:
    """The prompt for ``terms`` (None: the defaults), or None for English-only decoding
    (the default terms are Vietnamese) or an empty list. Terms are deduplicated, kept in
    order and cut at :data:`MAX_PROMPT_CHARS`."""
    chosen = DEFAULT_TERMS if terms is None else tuple(terms)
    if language == "en" and terms is None:
        return None
    seen: list[str] = []
    length = 0
    for term in chosen:
        term = " ".join(term.split())
        if not term or term in seen:
            continue
        if length + len(term) + 2 > MAX_PROMPT_CHARS:
            break
        seen.append(term)
        length += len(term) + 2
    return ", ".join(seen) + "." if seen else None
