"""Words that signal actions, clause boundaries and parameters, in English and Turkish.

Everything here is data: the splitter, classifier and extractor read it, and all
keys are folded (see `text.fold`), so "kaydet", "KAYDET" and "kaydet" typed as
"kaydet" on a phone share one entry. Turkish verbs are listed as stems and
expanded into their inflected forms by `turkish_verbs.py`.
"""

from __future__ import annotations

from altlas.plans.model import TaskType

__all__ = [
    "EN_BLOCKERS",
    "EN_FILLERS",
    "EN_MARKERS",
    "EN_OTHER_VERBS",
    "EN_PHRASES",
    "EN_VERBS",
    "FORMATS",
    "LANGUAGE_NAMES",
    "TR_COMPOUNDS",
    "TR_FILLERS",
    "TR_LIGHT_VERBS",
    "TR_MARKERS",
    "TR_STEMS",
    "Marker",
]

T = TaskType

# --- English -----------------------------------------------------------------------

# Base (imperative) forms. A verb signals its type only where it is used as a verb:
# not right after a determiner or preposition ("the download folder", "for search").
EN_VERBS: dict[str, TaskType] = {
    **dict.fromkeys(["search", "find", "google", "seek", "locate", "research", "lookup"], T.SEARCH),
    **dict.fromkeys(["open", "launch", "start", "reopen", "visit", "load"], T.OPEN),
    **dict.fromkeys(["close", "quit", "exit", "terminate", "kill"], T.CLOSE),
    **dict.fromkeys(
        ["create", "make", "write", "generate", "draft", "compose", "build", "produce", "prepare", "design"],
        T.CREATE,
    ),
    **dict.fromkeys(["save", "store", "export", "bookmark"], T.SAVE),
    **dict.fromkeys(["delete", "remove", "erase", "wipe", "purge", "trash", "clear", "uninstall"], T.DELETE),
    **dict.fromkeys(["move", "relocate", "transfer"], T.MOVE),
    **dict.fromkeys(["copy", "duplicate", "backup", "clone", "replicate"], T.COPY),
    **dict.fromkeys(["compress", "zip", "archive", "gzip", "tar", "unzip"], T.COMPRESS),
    **dict.fromkeys(["download", "fetch"], T.DOWNLOAD),
    **dict.fromkeys(
        ["send", "email", "e-mail", "mail", "upload", "share", "message", "text", "forward", "post", "dm"],
        T.SEND,
    ),
    **dict.fromkeys(
        ["convert", "transform", "format", "reformat", "resize", "rename", "crop", "rotate", "encode"],
        T.TRANSFORM,
    ),
    **dict.fromkeys(["translate"], T.TRANSLATE),
    **dict.fromkeys(
        [
            "analyze", "analyse", "check", "inspect", "measure", "examine", "evaluate", "assess",
            "review", "audit", "scan", "diagnose", "investigate", "verify", "compare", "calculate",
            "test", "monitor", "benchmark",
        ],
        T.ANALYZE,
    ),
    **dict.fromkeys(["summarize", "summarise", "recap", "condense"], T.SUMMARIZE),
    **dict.fromkeys(["show", "list", "display", "print", "view"], T.SHOW),
    **dict.fromkeys(["sort", "order", "rank", "arrange", "alphabetize", "prioritize"], T.SORT),
    **dict.fromkeys(
        ["run", "execute", "play", "install", "restart", "reboot", "update", "upgrade", "deploy", "compile"],
        T.EXECUTE,
    ),
    **dict.fromkeys(["schedule", "plan", "remind", "reschedule", "book"], T.SCHEDULE),
    **dict.fromkeys(["screenshot", "screencap"], T.SCREENSHOT),
}  # fmt: skip

# Actions outside the 20 task types ("turn up the volume", "call Ali"): a clause led by
# one is its own segment, typed execute with low confidence. Kept to words that are
# rarely nouns right after "and" or a comma.
EN_OTHER_VERBS = frozenset(
    "increase decrease raise lower turn mute unmute pause resume call phone dial tell ask reply "
    "answer buy purchase pay reserve fix repair edit modify change enable disable activate "
    "deactivate connect disconnect lock unlock login logout log sign refresh reload undo redo select "
    "click tap press scroll zoom maximize minimize hide show wake charge add insert attach paste "
    "merge sync shuffle repeat skip subscribe unsubscribe follow unfollow accept decline approve "
    "reject confirm cancel submit register watch listen read learn keep get give bring put set "
    "adjust configure customize pin unpin highlight wait leave drive walk turn switch empty fill "
    "open clear block unblock allow deny mention invite join tag stop".split()
)

# Multi-word actions, matched before single verbs (longest first). "*" matches one
# determiner (a, an, the, my, this, ...) or nothing; "~" one pronoun (it, them, ...) or nothing.
EN_PHRASES: dict[tuple[str, ...], TaskType] = {
    ("take", "*", "screenshot"): T.SCREENSHOT,
    ("take", "*", "screen", "shot"): T.SCREENSHOT,
    ("take", "*", "screen", "capture"): T.SCREENSHOT,
    ("take", "*", "snapshot", "of", "*", "screen"): T.SCREENSHOT,
    ("grab", "*", "screenshot"): T.SCREENSHOT,
    ("capture", "*", "screenshot"): T.SCREENSHOT,
    ("capture", "*", "screen"): T.SCREENSHOT,
    ("capture", "*", "display"): T.SCREENSHOT,
    ("snap", "*", "screenshot"): T.SCREENSHOT,
    ("make", "*", "screenshot"): T.SCREENSHOT,
    ("print", "screen"): T.SCREENSHOT,
    ("look", "~", "up"): T.SEARCH,
    ("look", "for"): T.SEARCH,
    ("search", "up"): T.SEARCH,
    ("hunt", "for"): T.SEARCH,
    ("back", "~", "up"): T.COPY,
    ("make", "*", "copy"): T.COPY,
    ("make", "*", "backup"): T.COPY,
    ("take", "*", "backup"): T.COPY,
    ("fire", "~", "up"): T.OPEN,
    ("boot", "~", "up"): T.OPEN,
    ("bring", "~", "up"): T.OPEN,
    ("go", "to"): T.OPEN,
    ("navigate", "to"): T.OPEN,
    ("shut", "~", "down"): T.CLOSE,
    ("turn", "~", "off"): T.CLOSE,
    ("get", "rid", "of"): T.DELETE,
    ("clean", "~", "up"): T.DELETE,
    ("empty", "*", "trash"): T.DELETE,
    ("empty", "*", "recycle", "bin"): T.DELETE,
    ("sum", "~", "up"): T.SUMMARIZE,
    ("give", "me", "*", "summary"): T.SUMMARIZE,
    ("turn", "into"): T.TRANSFORM,
    ("set", "*", "reminder"): T.SCHEDULE,
    ("set", "*", "alarm"): T.SCHEDULE,
    ("set", "*", "timer"): T.SCHEDULE,
    ("set", "up", "*", "meeting"): T.SCHEDULE,
    ("add", "*", "to", "*", "calendar"): T.SCHEDULE,
    ("take", "*", "note"): T.CREATE,
    ("note", "~", "down"): T.CREATE,
    ("jot", "~", "down"): T.CREATE,
    ("set", "up"): T.EXECUTE,
    ("find", "out"): T.SEARCH,
    ("look", "into"): T.ANALYZE,
    ("look", "at"): T.ANALYZE,
    ("check", "out"): T.ANALYZE,
    ("figure", "out"): T.ANALYZE,
}

# Words after which a verb-looking word is a noun: "the download folder", "a search".
EN_BLOCKERS = frozenset(
    "the a an my your our their his her its this that these those some any each every all "
    "of for in on at with from by into onto about no another other new old same which whose "
    "is are was were be been being".split()
)

# Politeness and framing before the action; skipped when looking for the verb.
EN_FILLERS: tuple[tuple[str, ...], ...] = tuple(
    tuple(p.split())
    for p in [
        "please", "kindly", "just", "quickly", "now", "immediately", "right away", "also", "then",
        "can you", "could you", "would you", "will you", "would you mind", "can u", "pls", "plz",
        "i want you to", "i want to", "i need you to", "i need to", "i'd like you to", "i'd like to",
        "i would like you to", "i would like to", "help me", "go ahead and", "try to",
        "make sure to", "make sure you", "don't forget to", "do not forget to", "remember to",
        "let's", "lets", "you should", "you need to", "first", "hey", "ok", "okay", "altlas",
        "for me", "me",
        # polite frames: "would you mind" and "how about" take a gerund ("mind closing the window")
        "do you mind", "mind", "would you kindly", "will you kindly", "can you kindly", "could u",
        "would u", "would you be so kind as to", "could you be so kind as to", "be so kind as to",
        "would you be able to", "are you able to", "is it possible to", "is it possible for you to",
        "would it be possible to", "could i ask you to", "can i ask you to", "if you could",
        "i'd appreciate it if you could", "i would appreciate it if you could",
        "i'd appreciate if you could", "i'd be grateful if you could", "i wonder if you could",
        "i was wondering if you could", "do me a favor and", "do me a favour and", "how about",
        "what about", "feel free to", "i'd love you to", "i'd love it if you could",
    ]
)  # fmt: skip

# --- Turkish -------------------------------------------------------------------------

# Verb stems (the imperative form). `turkish_verbs.py` adds the suffixes.
TR_STEMS: dict[str, TaskType | None] = {
    **dict.fromkeys(["ara", "bul", "araştır", "sorgula", "googlela", "google'la"], T.SEARCH),
    **dict.fromkeys(["aç", "başlat", "gir", "git"], T.OPEN),
    **dict.fromkeys(["kapat", "çık", "sonlandır"], T.CLOSE),
    **dict.fromkeys(
        ["oluştur", "yarat", "yaz", "hazırla", "üret", "tasarla", "çiz", "ekle"], T.CREATE
    ),
    **dict.fromkeys(["kaydet", "sakla"], T.SAVE),
    **dict.fromkeys(["sil", "kaldır", "temizle", "boşalt"], T.DELETE),
    **dict.fromkeys(["taşı", "aktar"], T.MOVE),
    **dict.fromkeys(["kopyala", "yedekle", "çoğalt"], T.COPY),
    **dict.fromkeys(["sıkıştır", "arşivle", "ziple", "zip'le", "ziple"], T.COMPRESS),
    **dict.fromkeys(["indir"], T.DOWNLOAD),
    **dict.fromkeys(["gönder", "yolla", "yükle", "paylaş", "ilet", "postala", "bildir"], T.SEND),
    **dict.fromkeys(
        ["dönüştür", "çevir", "boyutlandır", "biçimlendir", "formatla", "döndür", "kırp", "adlandır"],
        T.TRANSFORM,
    ),
    **dict.fromkeys(["incele", "ölç", "değerlendir", "denetle", "tara", "hesapla", "karşılaştır"], T.ANALYZE),
    **dict.fromkeys(["özetle"], T.SUMMARIZE),
    **dict.fromkeys(["göster", "listele", "görüntüle", "yazdır"], T.SHOW),
    **dict.fromkeys(["sırala"], T.SORT),
    **dict.fromkeys(["çalıştır", "yürüt", "oynat", "kur", "çal", "güncelle", "derle"], T.EXECUTE),
    **dict.fromkeys(["planla", "zamanla", "hatırlat"], T.SCHEDULE),
    # Light verbs: alone they mean little; TR_COMPOUNDS gives them their type.
    # "yap" (do/make) too: "tam ekran yap" is no creation.
    **dict.fromkeys(["et", "yap", "al", "at", "çek", "çıkar", "geçir", "değiştir", "bırak"], None),
    # Actions outside the 20 types ("sesi yükselt", "annemi telefonla"): execute, low confidence.
    **dict.fromkeys(
        [
            "yükselt", "azalt", "artır", "arttır", "düşür", "düzelt", "onar", "ayarla", "duraklat",
            "söyle", "sor", "yanıtla", "cevapla", "öde", "düzenle", "etkinleştir", "bağlan", "bağla",
            "kilitle", "yenile", "seç", "tıkla", "kaydır", "yakınlaştır", "uzaklaştır", "büyüt",
            "küçült", "gizle", "uyandır", "yapıştır", "birleştir", "karıştır", "tekrarla", "atla",
            "beğen", "onayla", "izle", "dinle", "oku", "öğren", "getir", "götür", "koy", "bekle",
            "telefonla", "aktifleştir", "engelle", "davet", "katıl", "etiketle", "doldur", "kıs",
            "durdur", "sustur", "eşleştir", "yak", "söndür", "geç", "devam",
        ],
        None,
    ),
}  # fmt: skip

# The light verbs above (folded): they need their noun, so one never leads a clause alone.
TR_LIGHT_VERBS = frozenset({"et", "yap", "al", "at", "cek", "cikar", "gecir", "degistir", "birak"})

# Noun (+ noun) before a verb stem that together make one action. The nouns are folded
# prefixes: "yedeğini" and "yedek" both start with "yede" / "yedek".
TR_COMPOUNDS: dict[tuple[tuple[str, ...], str], TaskType] = {
    (("analiz",), "et"): T.ANALYZE,
    (("analiz",), "yap"): T.ANALYZE,
    (("analizini",), "yap"): T.ANALYZE,
    (("kontrol",), "et"): T.ANALYZE,
    (("test",), "et"): T.ANALYZE,
    (("gozden",), "gecir"): T.ANALYZE,
    (("tercume",), "et"): T.TRANSLATE,
    (("arama",), "yap"): T.SEARCH,
    (("google'da", "arama"), "yap"): T.SEARCH,
    (("yedek",), "al"): T.COPY,
    (("yedek",), "yap"): T.COPY,
    (("liste",), "yap"): T.CREATE,
    (("tablo",), "yap"): T.CREATE,
    (("sunum",), "yap"): T.CREATE,
    (("yedegini",), "al"): T.COPY,
    (("kopya",), "al"): T.COPY,
    (("kopyasini",), "al"): T.COPY,
    (("kopyasini",), "olustur"): T.COPY,
    (("yedegini",), "olustur"): T.COPY,
    (("ekran", "goruntusu"), "al"): T.SCREENSHOT,
    (("ekran", "goruntusunu"), "al"): T.SCREENSHOT,
    (("ekranin", "goruntusunu"), "al"): T.SCREENSHOT,
    (("ekran", "resmi"), "al"): T.SCREENSHOT,
    (("ekran", "goruntusu"), "cek"): T.SCREENSHOT,
    (("ekran", "goruntusu"), "yakala"): T.SCREENSHOT,
    (("ekrani",), "yakala"): T.SCREENSHOT,
    (("screenshot",), "al"): T.SCREENSHOT,
    (("mail",), "at"): T.SEND,
    (("e-posta",), "at"): T.SEND,
    (("eposta",), "at"): T.SEND,
    (("mesaj",), "at"): T.SEND,
    (("mesaj",), "yaz"): T.SEND,
    (("yeniden",), "adlandir"): T.TRANSFORM,
    (("adini",), "degistir"): T.TRANSFORM,
    (("ismini",), "degistir"): T.TRANSFORM,
    (("adlarini",), "degistir"): T.TRANSFORM,
    (("boyutunu",), "degistir"): T.TRANSFORM,
    (("formatini",), "degistir"): T.TRANSFORM,
    (("yeniden",), "boyutlandir"): T.TRANSFORM,
    (("yeniden",), "baslat"): T.EXECUTE,
    (("karsidan",), "yukle"): T.DOWNLOAD,
    (("disa",), "aktar"): T.SAVE,
    (("disari",), "aktar"): T.SAVE,
    (("kayit",), "et"): T.SAVE,
    (("ozet",), "cikar"): T.SUMMARIZE,
    (("ozetini",), "cikar"): T.SUMMARIZE,
    (("ozetini",), "yap"): T.SUMMARIZE,
    (("alarm",), "kur"): T.SCHEDULE,
    (("hatirlatici",), "kur"): T.SCHEDULE,
    (("hatirlatici",), "ekle"): T.SCHEDULE,
    (("hatirlatma",), "kur"): T.SCHEDULE,
    (("takvime",), "ekle"): T.SCHEDULE,
    (("toplanti",), "ayarla"): T.SCHEDULE,
    (("not",), "al"): T.CREATE,
    (("cikis",), "yap"): T.CLOSE,
    (("oturumu",), "kapat"): T.CLOSE,
    (("muzik",), "cal"): T.EXECUTE,
}

TR_FILLERS: tuple[tuple[str, ...], ...] = tuple(
    tuple(p.split())
    for p in [
        "lutfen", "hemen", "simdi", "acilen", "hizlica", "derhal", "bana", "benim icin", "da", "de",
        "tamam", "rica etsem", "ltf", "bir zahmet", "mumkunse", "hadi", "acaba", "zahmet olmazsa",
        "rica ederim", "rica ediyorum",
    ]
)  # fmt: skip

# --- Boundaries ----------------------------------------------------------------------


class Marker:
    """Kinds of clause-boundary words.

    The last four introduce a subordinate clause, whose action is ordered against its
    main clause's: "after X, Y" and "Y after X" both do X first, "before X, Y" does Y
    first, "while X, Y" does both at once, and "Y without X" / "X-madan Y" never does X.
    """

    CONJUNCTION = "conjunction"
    SEQUENCE = "sequence"
    PARALLEL = "parallel"
    AFTER = "after"
    BEFORE = "before"
    WHILE = "while"
    WITHOUT = "without"

    SUBORDINATE = frozenset({AFTER, BEFORE, WHILE, WITHOUT})


def _markers(kind: str, phrases: str) -> dict[tuple[str, ...], str]:
    return {tuple(p.split()): kind for p in phrases.split(",")}


# Folded phrases that separate clauses, per language. A marker only splits where both
# sides hold an action; otherwise the clauses are joined again with the marker inside.
EN_MARKERS: dict[tuple[str, ...], str] = {
    **_markers(Marker.CONJUNCTION, "and,also,and also,plus,but,as well as,additionally,in addition"),
    **_markers(
        Marker.SEQUENCE,
        "then,and then,after that,and after that,afterwards,afterward,next,and next,finally,and finally,"
        "lastly,later,subsequently,once done,when done,once that is done,once that's done,"
        "when that's done,when finished,after this,first,firstly,to start,second,secondly,third,"
        "thirdly,and lastly,then also",
    ),
    **_markers(
        Marker.PARALLEL,
        "at the same time,simultaneously,in parallel,meanwhile,in the meantime,concurrently,"
        "and at the same time,and simultaneously,and meanwhile,and in parallel,and concurrently,"
        "while at it,while you're at it,at once",
    ),
    # Subordinators. Only a clause with an action after them stays apart ("after the
    # meeting" has none); their verb may be a gerund or participle ("after saving it").
    **_markers(
        Marker.AFTER,
        "after,right after,just after,immediately after,soon after,upon,once,as soon as,"
        "when you have,when you've,when you are done,when you're done,when you are finished,"
        "when you're finished,when you finish",
    ),
    **_markers(Marker.BEFORE, "before,right before,just before,prior to"),
    **_markers(Marker.WHILE, "while"),
    **_markers(Marker.WITHOUT, "without,instead of,rather than"),
}
TR_MARKERS: dict[tuple[str, ...], str] = {
    **_markers(
        Marker.CONJUNCTION,
        "ve,ayrica,ve ayrica,bir de,ek olarak,ama,fakat,ve de,bunun yaninda,ayrica da,hem de",
    ),
    **_markers(
        Marker.SEQUENCE,
        "sonra,ardindan,daha sonra,en son,son olarak,sonrasinda,akabinde,ondan sonra,bundan sonra,"
        "bunu yaptiktan sonra,bunun ardindan,onun ardindan,once,ilk once,ilk olarak,en sonunda,"
        "sonunda,sonra da,ardindan da,daha sonra da,ve sonra,ve ardindan,ve daha sonra,ve en son,"
        "sonrasinda da,ve son olarak,en son da,son olarak da",
    ),
    **_markers(
        Marker.PARALLEL,
        "ayni anda,es zamanli,eszamanli,es zamanli olarak,eszamanli olarak,paralel olarak,"
        "paralelde,bu arada,ayni zamanda,bu sirada,ve ayni anda,ve es zamanli olarak,"
        "ve paralel olarak,ve ayni zamanda,ayni anda da,ve bu arada,ve eszamanli olarak,"
        "ve es zamanli,ve eszamanli,bir yandan da",
    ),
}


# --- Parameter vocabulary --------------------------------------------------------------

FORMATS = frozenset(
    "pdf csv docx doc txt json xml yaml yml html htm md markdown xlsx xls pptx ppt odt ods rtf epub "
    "png jpg jpeg gif bmp tiff tif webp svg heic ico mp3 wav flac ogg aac m4a mp4 mkv avi mov webm "
    "zip tar gz tgz rar 7z iso exe msi sql parquet tsv ini toml log".split()
)

# Folded stems of language names. A word starting with one of them names a language:
# "turkish", "türkçe'ye" and "ingilizceye" all match.
LANGUAGE_NAMES = (
    "english", "turkish", "german", "french", "spanish", "italian", "russian", "arabic", "chinese",
    "japanese", "korean", "portuguese", "dutch", "greek", "persian", "farsi", "hindi", "urdu",
    "polish", "swedish", "norwegian", "danish", "finnish", "hungarian", "czech", "romanian",
    "bulgarian", "ukrainian", "hebrew", "kurdish", "azerbaijani", "azeri", "indonesian", "malay",
    "vietnamese", "thai", "latin", "mandarin", "cantonese", "bengali", "swahili",
    "turkce", "ingilizce", "almanca", "fransizca", "ispanyolca", "italyanca", "rusca", "arapca",
    "cince", "japonca", "korece", "portekizce", "felemenkce", "hollandaca", "yunanca", "farsca",
    "hintce", "urduca", "lehce", "isvecce", "norvecce", "danca", "fince", "macarca", "cekce",
    "romence", "bulgarca", "ukraynaca", "ibranice", "kurtce", "azerice", "endonezce", "latince",
)  # fmt: skip
