"""Japan's prefectures by JIS X 0401 code and the regional blocks in the order Japanese organisations list them
(north to south: 北海道 → 東北 → 関東 → 東海・中部 → 北陸 → 近畿 → 中国 → 四国 → 九州・沖縄).

Used when a unit is created, to give it its stored `position`: a council's is its prefecture code, a block's its
region's rank. Reads sort by the stored column, never by these tables."""
from __future__ import annotations

# Index + 1 is the JIS code: PREFECTURES[12] is 東京都, code 13.
PREFECTURES = ("北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県", "茨城県", "栃木県", "群馬県",
               "埼玉県", "千葉県", "東京都", "神奈川県", "新潟県", "富山県", "石川県", "福井県", "山梨県", "長野県",
               "岐阜県", "静岡県", "愛知県", "三重県", "滋賀県", "京都府", "大阪府", "兵庫県", "奈良県", "和歌山県",
               "鳥取県", "島根県", "岡山県", "広島県", "山口県", "徳島県", "香川県", "愛媛県", "高知県", "福岡県",
               "佐賀県", "長崎県", "熊本県", "大分県", "宮崎県", "鹿児島県", "沖縄県")

# A block's rank from the region its name begins with.
# 東海 and 中部 share a rank (organisations use one or the other for the same area), so do 九州 and 沖縄.
REGIONS = (("北海道", 1), ("東北", 2), ("関東", 3), ("首都圏", 3), ("東海", 4), ("中部", 4), ("北陸", 5),
           ("信越", 5), ("近畿", 6), ("関西", 6), ("中国", 7), ("四国", 8), ("九州", 9), ("沖縄", 9))


def prefecture_name(code: str) -> str:
    """The prefecture's name with its suffix (東京都, 大阪府, 北海道, 神奈川県) from its two-digit JIS code."""
    return PREFECTURES[int(code) - 1]


def council_name(code: str) -> str:
    """What a federation calls its council in a prefecture: the prefecture's full name and 協 (東京都協, 北海道協)."""
    return f"{prefecture_name(code)}協"


def region_rank(block_name: str) -> int | None:
    """The rank of the region a block's name begins with (北海道ブロック: 1, 九州・沖縄ブロック: 9), None if unknown."""
    name = block_name.strip()
    for region, rank in REGIONS:
        if name.startswith(region):
            return rank
    return None
