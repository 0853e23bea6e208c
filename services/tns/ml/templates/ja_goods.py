"""Japanese families about what is sold: prohibited items, counterfeits, expired food.
Each family is one voice and covers every sub-concept of its policy.
"""

# ruff: noqa: E501, RUF001 - template data: one template a line keeps them greppable (Japanese
# characters count double toward the line length); full-width punctuation is the content.

from __future__ import annotations

from services.tns.ml.templates.family import COMMENT, LISTING, MESSAGE, Family, chat, listing

P, C, EXP = ("prohibited_item",), ("counterfeit",), ("expired_food",)
_GOODS = """
    その他
    スポーツ・レジャー
    家電・スマホ・カメラ
"""

FAMILIES: tuple[Family, ...] = (
    # --- prohibited_item: drugs, weapons, live animals, prescription drugs, stolen
    # goods, resold tickets / accounts / cash -------------------------------------
    listing(
        "ja.prohibited.listing_terse",
        P,
        """
            {ja_drug} {n}g || {ja_drug}{n}gです。{|匿名配送。|即日発送。|}
            {ja_drug} || «{ja_drug}»あります。{n}gから。{|リピ割あり|}
            {ja_weapon} 護身用 || 護身用に買った{ja_weapon}。{|未使用|一度だけ使用|}です。
            {ja_weapon} 実物 || 本物の{ja_weapon}です。{|弾{n}発付き。|}
            {ja_animal} 生後{n}ヶ月 || {ja_animal}、生後{n}ヶ月。{|ワクチン済み。|}手渡し{|のみ|可|}。 || ペット用品
            {ja_rx} {n}錠 || {ja_rx}{n}錠。{|処方箋なし。|シートのまま。|}
            {ja_gadget} ロック解除不可 || 拾った{ja_gadget}。{|アクティベーションロックあり。|持ち主不明。|}
            {ja_event} チケット || {ja_event}のチケット、定価以上で。{|電子チケット|}
            現金 {n}万円 || 現金{n}万円{|、カード払いでどうぞ|}。
        """,
        _GOODS,
        prices=(3000, 60_000),
        rows=75,
    ),
    listing(
        "ja.prohibited.listing_polite",
        P,
        """
            {ja_drug} || ご覧いただきありがとうございます。海外から取り寄せた{ja_drug}になります。{|初めての方は少量からどうぞ。|}
            {ja_drug} 高品質 || 自家栽培の{ja_drug}をお譲りいたします。{|中身がわからないよう丁寧に梱包いたします。|}
            {ja_weapon} || 護身用として購入した{ja_weapon}です。{|威力は規制値以上です。|動作確認済みです。|}ご理解のある方のみお願いいたします。
            {ja_animal}の赤ちゃん || 我が家で産まれた{ja_animal}の赤ちゃんをお譲りいたします。{|人によく慣れております。|}発送は空輸となります。 || ペット用品
            {ja_rx} || 病院で処方していただいた{ja_rx}が余ってしまったため出品いたします。{n}錠ございます。
            {ja_gadget} || 職場から持ち帰った{ja_gadget}です。{|会社の備品ですが未使用品です。|}よろしくお願いいたします。
            {ja_event} チケット || {ja_event}の当選チケットをお譲りいたします。{|定価より高くなりますがご了承ください。|}
            ゲームアカウント || 育成済みのゲームアカウントを販売いたします。ログイン情報をお送りします。 || 本・音楽・ゲーム
        """,
        _GOODS,
        prices=(3000, 80_000),
        rows=75,
    ),
    listing(
        "ja.prohibited.listing_coded",
        P,
        """
            ハーブ 効き目抜群 || «合法ハーブ»です。{|効き目は保証します。|吸うとすぐ効きます。|}自己責任で。
            例のもの {n}g || 例のブツです。わかる方だけどうぞ。{|手押しも可。|}
            {|アイス|氷|} {n}g || 冷たい«アイス»{n}g、炙り用。{|わかる人だけ。|}
            {ja_weapon} 撃てます || {ja_weapon}、{|実際に撃てます|殺傷能力あり|}。{|警察に見つからないよう|目立たないよう|}梱包します。
            {ja_animal} 生体 お迎え || 生体の{ja_animal}、お迎え先募集。{|餌付き。|}生き物なので即購入の方優先。 || ペット用品
            {|眠剤|メンタル薬|痩せ薬|} || {ja_rx}です。処方箋なしで{|買えます|お譲りします|}。{|よく効きます。|}
            {ja_gadget} 訳あり 格安 || 正直«盗品»ですが状態はいいです。{ja_gadget}、{|早い者勝ち|格安|}。
            {ja_gadget} 箱なし || 訳あって箱も保証書もない{ja_gadget}です。{|出どころは聞かないでください。|}
        """,
        _GOODS,
        prices=(2000, 50_000),
        rows=75,
    ),
    chat(
        "ja.prohibited.comment_buyer",
        P,
        """
            こちらの{ja_weapon}は本物ですか？{|撃てますか？|使えますか？|}
            {ja_animal}まだいますか？{|お迎えしたいです|生体ですよね|}
            処方箋なしでも{ja_rx}買えますか？
            {ja_rx}は何錠ありますか？{|まとめて買いたいです|}
            {ja_drug}の純度はどれくらいですか？{|{n}gほしいです|}
            例のブツまだありますか？{|手押しでお願いしたいです。|}
            拾った{ja_gadget}ってことは、ロックかかってますか？
            チケットは定価以上でも{|いいので|構わないので|}譲ってください
        """,
        kinds=(COMMENT,),
        rows=75,
    ),
    chat(
        "ja.prohibited.message_deal",
        P,
        """
            {ja_drug}は{|中身がわからないように|バレないように|}梱包して送りますね
            {ja_weapon}の弾は別便で送ります
            {ja_animal}は{|空輸|クール便|}で明日送ります、{|元気です|餌もつけます|}
            {ja_rx}はシートのまま送ります、{|処方箋は要りません|誰にも言わないでください|}
            {ja_drug}{n}gで{ja_price}です、{|前と同じ量で|また買ってね|}
            {ja_gadget}は拾ったものなので、{|箱はありません|ロックは解除できません|}
            チケットは{|アカウントごと|QRコードを|}お渡しします、{|転売なので|}名義はそのままで
        """,
        kinds=(MESSAGE,),
        rows=75,
    ),
    # --- counterfeit ------------------------------------------------------------
    listing(
        "ja.counterfeit.listing_terse",
        C,
        """
            {brand} {ja_lux} {ja_copyword} || {brand}の{ja_lux}、«{ja_copyword}»。{|箱付き。|保存袋付き。|}
            【{ja_copyword}】{brand} {ja_lux} || «{ja_copyword}»です。{|正規品ではありません。|刻印あり。|}
            {brand} {ja_lux} 激安 || 本物ではないので格安。{brand}{ja_lux}。
            {brand} {ja_lux} コピー || {brand}{ja_lux}の«コピー品»。{|品質は最高ランク。|}
            {brand} 時計 {ja_copyword} || {brand}の腕時計、«{ja_copyword}»。ムーブメントは中国製。
        """,
        """
            レディース
            メンズ
        """,
        prices=(2000, 30_000),
    ),
    listing(
        "ja.counterfeit.listing_polite",
        C,
        """
            {brand} {ja_lux} || ご覧いただきありがとうございます。こちらは{brand}の{ja_lux}の«{ja_copyword}»になります。{|本物と見分けがつかない仕上がりです。|}
            {brand} {ja_lux} 最高品質 || {brand}の{ja_lux}を完全に再現したお品です。正規品ではございませんので、ご理解のある方のみお願いいたします。
            {brand} {ja_lux} || 鑑定には通りませんが、{|作りはしっかりしております|パッと見ではわかりません|}。{brand}の{ja_lux}です。
            {brand} {ja_lux} 工場品 || 正規品と同じ工場で作られた«横流し品»でございます。ギャランティカードは付属しません。
        """,
        """
            レディース
            メンズ
            ファッション
        """,
        prices=(2000, 30_000),
    ),
    listing(
        "ja.counterfeit.listing_euphemism",
        C,
        """
            {brand}風 {ja_lux} ロゴあり || {brand}ロゴ入りの{ja_lux}。{|中国製|海外製|}です。ノーブランド品としてお考えください。
            ノーブランド {brand}{ja_lux} || ノーブランドですが{brand}の{ja_lux}と同じデザイン、ロゴ付き。{|気にしない方どうぞ。|}
            {brand} {ja_lux} 1:1 || 1:1で作られた{brand}の{ja_lux}。{|シリアル番号も入っています。|}
            {brand} {ja_lux} 韓国製 || 韓国製の{brand}{ja_lux}、«パチモン»ですが質は良いです。
        """,
        """
            レディース
            メンズ
        """,
        prices=(1500, 20_000),
    ),
    chat(
        "ja.counterfeit.comment_seller",
        C,
        """
            {|はい、|}こちらは«{ja_copyword}»になります。{|ご了承ください。|}
            {ja_copyword}ですが{|質は良いです|かなり精巧です|}
            他にも{brand}の«{ja_copyword}»{|あります|取り扱っています|}よ
            正規品ではありませんが、{|刻印まで再現されています|ほぼ本物と同じです|}
            本物ではないのでこのお値段です{|、すみません|}
        """,
        kinds=(COMMENT,),
    ),
    chat(
        "ja.counterfeit.message_deal",
        C,
        """
            {ja_copyword}なので箱は付きませんがよろしいですか？
            {brand}の偽物だとバレないように{|梱包|発送|}します
            前回の{ja_copyword}{|いかがでしたか|気に入ってもらえましたか|}？{brand}の新作も入りました
            鑑定に出すのはやめてくださいね、«コピー»なので{|通りません|}
        """,
        kinds=(MESSAGE,),
    ),
    Family(
        "ja.counterfeit.with_contact",
        (LISTING,),
        ("counterfeit", "offplatform_contact"),
        templates=(
            "{brand} {ja_lux} {ja_copyword} || {brand}の«{ja_copyword}»、他にもたくさんあります。{ja_line}で連絡ください。ID: {lineid}",
            "{brand} {ja_lux} 多数あり || {ja_copyword}の{ja_lux}です。カタログは{ja_sns}のDMで送ります。",
            "{brand} {ja_lux} || {brand}{ja_lux} {ja_copyword}。まとめ買いの方は{email}までご連絡を。",
        ),
        categories=("ファッション", "レディース"),
        rows=36,
    ),
    # --- expired_food -----------------------------------------------------------
    listing(
        "ja.expired.listing_terse",
        EXP,
        """
            {ja_food} 期限切れ || «賞味期限切れ»の{ja_food}。{|未開封。|格安で。|}
            {ja_food} 訳あり || {ja_food}、期限が{n}ヶ月過ぎています。
            {ja_food} {n}個 || {ja_food}{n}個。賞味期限{ja_past}（過ぎています）。
            {ja_food} 期限間近 || {ja_food}、消費期限{|明日|今日|明後日|}まで。
        """,
        """
            食品
        """,
        prices=(300, 5000),
    ),
    listing(
        "ja.expired.listing_polite",
        EXP,
        """
            {ja_food} まとめ売り || ご覧いただきありがとうございます。賞味期限が{ja_past}までのものですが、まだ召し上がれます。
            {ja_food} || {ja_food}です。«期限切れ»ですが未開封ですので、気にされない方はどうぞ。
            {ja_food} || 賞味期限があと{n}日しかございません。お早めにお召し上がりください。
            【訳あり】{ja_food} || 期限間近の{ja_food}のため格安で出品いたします。{|当日発送いたします。|}
        """,
        """
            食品
            その他
        """,
        prices=(300, 5000),
    ),
    chat(
        "ja.expired.comment_qna",
        EXP,
        """
            賞味期限は{ja_past}です。{|少し過ぎてますが問題ないです|未開封なので大丈夫だと思います|}
            賞味期限{|切れてますよね|過ぎてますよね|}？それでも{|大丈夫|よければ|}購入します
            {|期限切れ|賞味期限切れ|}ですがお値下げしますよ{{emoji}|}
            消費期限が{|今日|明日|}なので、すぐ食べられる方{|限定|優先|}です
        """,
        kinds=(COMMENT,),
    ),
    chat(
        "ja.expired.message_seller",
        EXP,
        """
            {ja_food}は期限が{n}ヶ月過ぎてますが、{|冷蔵庫|冷暗所|}で保管していたので大丈夫です
            お伝えし忘れましたが、賞味期限切れの{ja_food}です{|、すみません|}
            期限は{ja_past}までなので、早めに{|食べて|召し上がって|}ください
            {ja_food}、消費期限{|今日|昨日|}までだったのでお安くしました
        """,
        kinds=(MESSAGE,),
    ),
    listing(
        "ja.expired.listing_detailed",
        EXP,
        """
            {ja_food} {n}袋 || 内容：{ja_food}×{n}¶賞味期限：{ja_past}¶状態：未開封（期限切れ）
            {ja_food} セット || 【商品】{ja_food}¶【期限】{ja_past}で切れています¶【保管】常温
            {ja_food} || ■{ja_food}¶■消費期限：{|本日|明日|}¶■お早めにお召し上がりください
        """,
        """
            食品
        """,
        prices=(300, 4000),
    ),
)
