"""Slot fillers: word pools and generated values (numbers, dates, contact details).

Pools of five or more values keep their last fifth for held-out families only (see
`services.tns.ml.generate`), so the held-out split also meets words the model never saw.
"""

# ruff: noqa: RUF001 - template data: full-width punctuation is the content.

from __future__ import annotations

import random
import string
from collections.abc import Callable

from services.tns.ml.templates.family import pool
from services.tns.ml.templates.fillers_en import EN_POOLS

POOLS: dict[str, tuple[str, ...]] = {
    "brand": pool(
        """
        ルイヴィトン / Louis Vuitton / シャネル / CHANEL / エルメス / グッチ / GUCCI / プラダ / ロレックス /
        ディオール / バレンシアガ / セリーヌ / モンクレール / オメガ / カルティエ / Supreme / ティファニー /
        サンローラン / ボッテガヴェネタ / フェンディ
        """
    ),
    "emoji": pool(
        """
        😊 / 🙏 / ✨ / 💕 / 🎁 / 📦 / 👍 / 😭 / 🔥 / ⭐ / 🌸 / 💯 / 🥺 / 🙇‍♀️ / ‼️
        """
    ),
    "casual_brand": pool(
        """
        ユニクロ / ZARA / 無印良品 / GU / ニコアンド / BEAMS / patagonia / THE NORTH FACE / adidas /
        New Balance / UNITED ARROWS / H&M
        """
    ),
    "ja_item": pool(
        """
        ワンピース / スニーカー / Nintendo Switch / iPhone 13 / 絵本セット / ベビーカー / 電気ケトル /
        ダウンジャケット / ポケモンカード / 炊飯器 / ヨガマット / ゲームソフト / コーヒーメーカー /
        子供服まとめ売り / 漫画全巻セット / ワイヤレスイヤホン / ランドセル / 加湿器 / 折りたたみ自転車 /
        食器セット / ぬいぐるみ / トートバッグ / ドライヤー / 腕時計
        """
    ),
    "ja_lux": pool(
        """
        長財布 / ショルダーバッグ / トートバッグ / 腕時計 / ネックレス / スニーカー / キャップ / パーカー /
        ベルト / キーケース / サングラス / リュック / 二つ折り財布 / ブレスレット / カードケース
        """
    ),
    "ja_desc": pool(
        """
        ご覧いただきありがとうございます。 / 数回使用しましたが、目立った傷や汚れはありません。 /
        自宅保管のため多少のスレはご了承ください。 / サイズが合わなくなったため出品します。 /
        引っ越しのため断捨離中です。 / 新品未使用です。タグ付きです。 / 写真の物が全てです。 /
        箱に少し潰れがあります。 / ペット・喫煙者はいません。 / 動作確認済みです。 /
        購入時期は昨年の春頃です。 / 丁寧に梱包して発送いたします。 /
        素人採寸のため多少の誤差はご了承ください。 / 中古品にご理解のある方のみお願いします。
        """
    ),
    "ja_greet": pool(
        """
        はじめまして / こんにちは / コメント失礼します / こんばんは / お世話になります / 失礼します /
        すみません / ご購入ありがとうございます
        """
    ),
    "ja_bank": pool(
        """
        三菱UFJ銀行 / ゆうちょ銀行 / みずほ銀行 / 三井住友銀行 / 楽天銀行 / PayPay銀行 / 住信SBIネット銀行 /
        りそな銀行 / ゆうちょ / 信用金庫の口座
        """
    ),
    "ja_payapp": pool(
        """
        PayPay / ペイペイ / LINE Pay / 楽天ペイ / au PAY / PayPal / Kyash / d払い
        """
    ),
    "ja_line": pool(
        """
        LINE / ライン / らいん / ﾗｲﾝ / L I N E / Line / ＬＩＮＥ
        """
    ),
    "ja_sns": pool(
        """
        インスタ / Instagram / X（旧Twitter） / ツイッター / Telegram / カカオトーク / Discord / TikTok
        """
    ),
    "ja_area": pool(
        """
        新宿 / 渋谷 / 池袋 / 梅田 / 横浜 / 名古屋 / 博多 / 札幌 / 大宮 / 天神
        """
    ),
    "ja_drug": pool(
        """
        大麻 / 乾燥大麻 / 大麻リキッド / THCリキッド / THCグミ / 覚醒剤 / MDMA / コカイン / 危険ドラッグ /
        脱法ハーブ / LSD / マジックマッシュルーム / ケタミン / シャブ / ガンジャ
        """
    ),
    "ja_weapon": pool(
        """
        拳銃 / 実弾 / スタンガン / 特殊警棒 / メリケンサック / 飛び出しナイフ / バタフライナイフ / ボウガン /
        改造エアガン / 手製の銃 / 猟銃 / ダガーナイフ
        """
    ),
    "ja_animal": pool(
        """
        子猫 / 子犬 / ハムスター / ウサギ / セキセイインコ / 文鳥 / ハリネズミ / リクガメ / チワワ /
        トイプードル / マンチカン / フクロモモンガ / ヒョウモントカゲモドキ
        """
    ),
    "ja_rx": pool(
        """
        睡眠薬 / デパス / ハルシオン / マイスリー / 抗生物質 / 抗不安薬 / ED治療薬 / リタリン /
        処方薬のロキソニン / サノレックス / 低用量ピル / コンサータ
        """
    ),
    "ja_gadget": pool(
        """
        iPhone 14 / iPad / AirPods Pro / MacBook Air / Apple Watch / Galaxy / ロードバイク / 一眼レフカメラ /
        Nintendo Switch / 電動工具
        """
    ),
    "ja_food": pool(
        """
        チョコレート / クッキー詰め合わせ / レトルトカレー / カップラーメン / ツナ缶 / プロテイン / お米5kg /
        はちみつ / 緑茶ティーバッグ / コーヒー豆 / ベビーフード / 非常食セット / お菓子まとめ売り / 粉ミルク /
        そうめん / ドリップコーヒー
        """
    ),
    "ja_insult": pool(
        """
        バカ / アホ / クズ / ゴミ / カス / 死ね / 消えろ / キモい / ブス / 低能 / 無能 / ボケ / ゴミクズ /
        くたばれ / 氏ね / ks
        """
    ),
    "ja_nationality": pool(
        """
        中国 / 韓国 / ベトナム / フィリピン / ブラジル / インド
        """
    ),
    "ja_copyword": pool(
        """
        N級品 / スーパーコピー / S級品 / コピー品 / レプリカ / 偽物 / パチモン / ミラー品 / 1:1 /
        韓国製コピー
        """
    ),
    "ja_ship": pool(
        """
        らくらくメルカリ便 / ゆうゆうメルカリ便 / ゆうパケット / ネコポス / 宅急便コンパクト /
        クリックポスト
        """
    ),
    "ja_apparel": pool(
        """
        ニット / デニム / ワンピース / コート / スカート / Tシャツ / ジャケット / ブラウス / スウェット /
        カーディガン
        """
    ),
    "ja_event": pool(
        """
        ドームツアー / アリーナ公演 / ファンミーティング / 夏フェス / ミュージカル / 野球の開幕戦
        """
    ),
    **EN_POOLS,
}


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _handle(rng: random.Random) -> str:
    stem = rng.choice(["taro", "yuki", "mika", "shop", "kenji", "sakura", "emily", "mike", "jp_sale", "hana", "rio"])
    return stem + rng.choice(["", "_", "."]) + _digits(rng, rng.choice([2, 3, 4]))


def _ja_phone(rng: random.Random) -> str:
    head = rng.choice(["090", "080", "070", "03", "06"])
    sep = rng.choice(["-", "", " ", "ー"])
    return f"{head}{sep}{_digits(rng, 4)}{sep}{_digits(rng, 4)}"


def _en_phone(rng: random.Random) -> str:
    area = rng.choice(["212", "415", "646", "310", "702", "917"])
    return rng.choice(
        [
            f"({area}) 555-{_digits(rng, 4)}",
            f"{area}-555-{_digits(rng, 4)}",
            f"+1 {area} 555 {_digits(rng, 4)}",
            f"{area}.555.{_digits(rng, 4)}",
            f"07700 9{_digits(rng, 5)}",
        ]
    )


def _email(rng: random.Random) -> str:
    user = _handle(rng)
    domain = rng.choice(["gmail.com", "yahoo.co.jp", "icloud.com", "docomo.ne.jp", "outlook.com", "hotmail.com"])
    at = rng.choice(["@", "@", "@", "＠", " at ", "(at)", "[at]"])
    return f"{user}{at}{domain}"


def _url(rng: random.Random) -> str:
    handle = _handle(rng)
    token = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(7))
    return rng.choice(
        [
            f"https://bit.ly/{token}",
            f"https://{handle.replace('.', '')}.base.shop",
            f"instagram.com/{handle}",
            f"t.me/{handle}",
            f"https://lin.ee/{token}",
            f"www.{handle.replace('.', '-').replace('_', '-')}.com",
        ]
    )


def _yen(rng: random.Random) -> str:
    amount = rng.choice([300, 500, 800, 1000, 1500, 2000, 2500, 3000, 4500, 5000, 8000, 12000, 15000, 30000])
    return rng.choice([f"{amount}円", f"{amount:,}円", f"¥{amount:,}"])


def _usd(rng: random.Random) -> str:
    return f"${rng.choice([5, 8, 10, 15, 20, 25, 40, 60, 80, 120, 200])}"


def _ja_past(rng: random.Random) -> str:
    y, m, d = rng.randint(2019, 2024), rng.randint(1, 12), rng.randint(1, 28)
    return rng.choice([f"{y}年{m}月{d}日", f"{y}.{m:02d}.{d:02d}", f"{y}/{m}/{d}", f"{y}年{m}月", f"{y % 100}.{m}.{d}"])


def _future(rng: random.Random) -> str:
    y, m, d = rng.randint(2027, 2029), rng.randint(1, 12), rng.randint(1, 28)
    return rng.choice([f"{y}年{m}月{d}日", f"{y}.{m:02d}.{d:02d}", f"{y}/{m}/{d}", f"{y}-{m:02d}", f"{y}年{m}月"])


def _en_past(rng: random.Random) -> str:
    y, m, d = rng.randint(2019, 2024), rng.randint(1, 12), rng.randint(1, 28)
    month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][m - 1]
    return rng.choice([f"{m}/{d}/{y}", f"{month} {y}", f"{y}-{m:02d}-{d:02d}", f"{d} {month} {y}"])


def _en_future(rng: random.Random) -> str:
    y, m, d = rng.randint(2027, 2029), rng.randint(1, 12), rng.randint(1, 28)
    month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][m - 1]
    return rng.choice([f"{m}/{d}/{y}", f"{month} {y}", f"{y}-{m:02d}-{d:02d}", f"{d} {month} {y}", f"{y}-{m:02d}"])


GENERATED: dict[str, Callable[[random.Random], str]] = {
    "n": lambda rng: str(rng.choice([1, 2, 3, 3, 5, 5, 10, 10, 20, 30])),
    "handle": _handle,
    "lineid": lambda rng: rng.choice(["", "@"]) + _handle(rng),
    "email": _email,
    "url": _url,
    "ja_phone": _ja_phone,
    "en_phone": _en_phone,
    "ja_price": _yen,
    "en_price": _usd,
    "ja_past": _ja_past,
    "en_past": _en_past,
    "ja_future": _future,
    "en_future": _en_future,
    "acct": lambda rng: _digits(rng, 7),
    "size": lambda rng: rng.choice(["S", "M", "L", "XL", "36", "38", "24.5cm", "26cm", "27.5cm", "F"]),
}
