"""Japanese families about how people behave: abuse, taking payment or contact off the
platform. Each family is one voice and covers every sub-concept of its policy.
"""

# ruff: noqa: RUF001 - template data: full-width punctuation is the content.

from __future__ import annotations

from services.tns.ml.templates.family import COMMENT, MESSAGE, Family, chat, listing

ABUSE, PAY, CON = ("offensive",), ("offplatform_payment",), ("offplatform_contact",)
_ITEMS = """
    家電・スマホ・カメラ
    インテリア・住まい・小物
    本・音楽・ゲーム
    ベビー・キッズ
    レディース
"""

FAMILIES: tuple[Family, ...] = (
    # --- offensive: insults, harassment, threats, hate --------------------------
    chat(
        "ja.offensive.comment_to_seller",
        ABUSE,
        """
            {ja_insult}かよ、こんな値段で売れるわけない
            値下げしろよ{ja_insult}
            {ja_insult}出品者{|だな|すぎ|}{|笑|w|}
            頭おかしいんじゃないの？{|{ja_insult}|}
            こんなゴミ出品すんな{|、{ja_insult}|}
            {|こんな服|これ|}着るのブスだけだろ
            {ja_nationality}人の出品者とか{|信用できない|無理|}
        """,
        kinds=(COMMENT,),
    ),
    chat(
        "ja.offensive.comment_to_buyer",
        ABUSE,
        """
            値下げ乞食は来るな{|、{ja_insult}|}
            貧乏人は買うなよ
            非常識な{ja_insult}はブロックします{|、二度と来るな|}
            日本語読めないの？{ja_insult}{|？|}
            プロフ読めない{ja_insult}は{|消えろ|相手にしない|}
            {ja_nationality}人お断り。{|日本人限定|}
            デブには{|無理|似合わない|}{|w|笑|}
        """,
        kinds=(COMMENT,),
    ),
    chat(
        "ja.offensive.message_threat",
        ABUSE,
        """
            {|住所わかってるからな|晒すぞ|家まで行くぞ|}{|、覚悟しとけ|}
            悪い評価つけたら{|許さない|覚えとけよ|ただじゃおかない|}
            {ja_insult}、さっさと発送しろ
            お前の{|顔|名前|}ネットに晒してやる{|から|}
            いい加減にしろよ{ja_insult}、{|殺すぞ|ぶっ飛ばすぞ|}
            {ja_nationality}人は国に帰れ{|、{ja_insult}|}
        """,
        kinds=(MESSAGE,),
    ),
    chat(
        "ja.offensive.chat_casual",
        ABUSE,
        """
            は？{ja_insult}？
            マジで{ja_insult}だな{|お前|}
            ふざけんな{|よ|}{ja_insult}
            {ja_insult}{ja_insult}{ja_insult}
            うざ、{ja_insult}
            キモい{|写真|自撮り|}載せんな
            女は黙ってろ{|、{ja_insult}|}
        """,
    ),
    chat(
        "ja.offensive.polite_veneer",
        ABUSE,
        """
            失礼ですが、{|頭が悪い|常識がない|}方とは取引したくありません。{ja_insult}ですね。
            {ja_nationality}人の方は信用できませんので、ご遠慮ください。
            あなたのような{ja_insult}に評価されたくないです。
            ご自身の顔を鏡で見てから{|着て|コメントして|}ください、ブサイクなので。
            {|生きてる価値ない|存在が迷惑|}と思いますよ。
        """,
    ),
    listing(
        "ja.offensive.listing_rude",
        ABUSE,
        """
            {ja_item} || {ja_desc}冷やかし・値下げ乞食お断り。{ja_insult}は買うな。
            {ja_apparel} {size} || {ja_desc}ブスには似合わないので購入しないでください。
            {ja_item} || {ja_nationality}人への発送はしません。{ja_desc}
            {ja_item} || 評価の悪い{ja_insult}はブロックします。{ja_desc}
        """,
        _ITEMS,
    ),
    # --- offplatform_payment: bank transfer, cash, pay apps, gift cards, cancel and
    # pay outside ---------------------------------------------------------------
    chat(
        "ja.payment.message_polite",
        PAY,
        """
            {|お手数ですが|}«銀行振込»でお願いできますでしょうか。{ja_bank}の口座をお伝えします。
            手数料がもったいないので、{ja_bank}に直接お振込みいただけると助かります。
            {ja_bank} 普通 {acct} {|タナカ|ヤマダ|サトウ|}までお振込みください。
            {ja_payapp}でお支払いいただけましたら、{ja_price}お値引きいたします。
            一度キャンセルしていただき、{|直接|}お振込みでのお取引はいかがでしょうか。
            お支払いは{|Amazonギフト券|iTunesカード|}でお願いできますでしょうか。
        """,
        kinds=(MESSAGE,),
    ),
    chat(
        "ja.payment.message_casual",
        PAY,
        """
            «PayPay»で送ってくれない？
            {ja_payapp}で払ってくれたら{ja_price}にするよ
            メルカリだと手数料取られるから{ja_payapp}でよくない？
            キャンセルして{|振込|PayPay|}にしよ
            代金は{ja_bank}に入れといて
            ギフトコード送ってくれたらすぐ発送する
            {|ビットコイン|仮想通貨|}払いならもっと安くできるよ
        """,
        kinds=(MESSAGE,),
    ),
    listing(
        "ja.payment.listing",
        PAY,
        """
            {ja_item} || {ja_desc}購入前にコメントください。«銀行振込»の方はお安くします。
            {ja_item} 美品 || {ja_desc}振込での取引も可能です。{|ご相談ください。|}
            {ja_item} || 手数料分お値引きしますので、アプリ外でのお支払い希望の方はご相談ください。{ja_desc}
            {ja_item} {ja_area}手渡し || {ja_desc}«現金手渡し»{|可|のみ|}。{ja_area}駅{|周辺|}で。
            {ja_item} || {ja_desc}{ja_payapp}払いできる方は{ja_price}引きます。
        """,
        _ITEMS,
    ),
    listing(
        "ja.payment.listing_notes",
        PAY,
        """
            {ja_item} || 【商品】{ja_item}¶【お支払い】銀行振込・現金手渡し可¶【発送】{ja_ship}
            {ja_item} || ■状態：{|美品|中古|}¶■支払い方法：{ja_payapp}送金でも可
            {ja_item} || {ja_desc}¶※振込をご希望の方はコメントへ
            {ja_item} || {ja_desc}¶受け渡し：{ja_area}で手渡し（現金）
        """,
        _ITEMS,
    ),
    chat(
        "ja.payment.comment",
        PAY,
        """
            {ja_area}で手渡し、現金払いでも大丈夫ですか？
            直接お会いして現金でお支払いできますか？
            {ja_payapp}払いなら{ja_price}で買います
            振込でよければ{|すぐ|今日中に|}払えます{{emoji}|}
            アプリ通さずに取引できる方{|いますか|優先です|}？
        """,
        kinds=(COMMENT,),
    ),
    Family(
        "ja.payment.with_contact",
        (MESSAGE,),
        ("offplatform_payment", "offplatform_contact"),
        templates=(
            "{ja_line}で連絡ください、お支払いは{ja_bank}への振込でお願いします。ID: {lineid}",
            "手数料かからないように{ja_payapp}で払います。電話番号は{ja_phone}です",
            "{email}に口座番号を送るので、そちらに振り込んでください",
            "{ja_line}交換して、{ja_payapp}で直接やり取りしませんか？",
        ),
        rows=36,
    ),
    # --- offplatform_contact: messenger ids, phone, e-mail, social DMs, links ------
    chat(
        "ja.contact.message_polite",
        CON,
        """
            詳しくは{ja_line}でお話しできればと思います。ID: {lineid}
            何かございましたら{|お電話|こちら|}にご連絡ください。{ja_phone}
            メールアドレス{email}にご連絡いただけますでしょうか。
            {email}まで{|写真|詳細|}をお送りいたします。
            {ja_sns}のDMでご連絡いただけると助かります。
        """,
        kinds=(MESSAGE,),
    ),
    chat(
        "ja.contact.chat_casual",
        CON,
        """
            {ja_line}交換{|しませんか|しよ|できますか|}？
            {ja_line}のIDは{lineid}だよ{{emoji}|}
            {ja_line}追加して→{lineid}
            «DM»ください{{emoji}|}
            {ja_sns}で「{handle}」検索して{|ね|ください|}
            電話のほうが早いから{ja_phone}にかけて
        """,
    ),
    listing(
        "ja.contact.listing",
        CON,
        """
            {ja_item} || {ja_desc}他の商品は{url}で販売しています。
            {ja_item} || {ja_desc}{url}の方が安く買えます。
            {ja_item} 値下げ交渉可 || {ja_desc}お急ぎの方は«電話»ください {ja_phone}
            {ja_item} || {ja_desc}連絡はメールで: {email}
            {ja_item} || {ja_desc}質問は{ja_line}でも受け付けます。ID {lineid}
        """,
        _ITEMS,
    ),
    listing(
        "ja.contact.listing_notes",
        CON,
        """
            {ja_item} || 【商品】{ja_item}¶【連絡先】{email}
            {ja_item} || ■状態：{|美品|中古|}¶■お問い合わせ：{ja_line} {lineid}
            {ja_item} || {ja_desc}¶※詳細は{ja_sns}（{handle}）にて
            {ja_item} || {ja_desc}¶在庫確認は{url}から
        """,
        _ITEMS,
    ),
    chat(
        "ja.contact.comment",
        CON,
        """
            {ja_sns}やってるのでフォローしてください！{handle}
            {ja_sns}のDMで{|詳細|他の商品|}お見せします
            在庫は{url}で確認できます
            {|こちら|このアプリ|}だとやり取りしにくいので{ja_line}で{|話しましょう|お願いします|}
            «メアド»教えるので直接やり取りしましょう → {email}
        """,
        kinds=(COMMENT,),
    ),
    chat(
        "ja.contact.message_numbers",
        CON,
        """
            携帯番号は{ja_phone}です
            «電話番号»お伝えしますね、{ja_phone}
            連絡先：{email}／{ja_phone}
            {ja_line} ID→{lineid}{|、こっちの方が返信早いです|}
        """,
        kinds=(MESSAGE,),
    ),
)
