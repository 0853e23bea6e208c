"""English families about how people behave: abuse, taking payment or contact off the
platform. Each family is one voice and covers every sub-concept of its policy.
"""

from __future__ import annotations

from services.tns.ml.templates.family import COMMENT, MESSAGE, Family, chat, listing

ABUSE, PAY, CON = ("offensive",), ("offplatform_payment",), ("offplatform_contact",)
_ITEMS = """
    Electronics
    Home
    Books
    Kids
    Women
"""

FAMILIES: tuple[Family, ...] = (
    # --- offensive --------------------------------------------------------------
    chat(
        "en.offensive.comment_to_seller",
        ABUSE,
        """
            lol who would pay that, {en_insult}
            lower the price {en_insult}
            you're a {en_insult}, {|nobody wants this junk|delete this|}
            what a {en_insult} seller {|smh|lmao|}
            are you {|stupid|dumb|} or something?
            only fat ugly people would wear this
            {en_nationality} sellers {|are all scammers|can't be trusted|}
        """,
        kinds=(COMMENT,),
    ),
    chat(
        "en.offensive.comment_to_buyer",
        ABUSE,
        """
            lowballers get lost, {en_insult}
            broke people don't even bother
            can't you read the description? {en_insult}
            blocked, {en_insult}. {|don't come back|}
            no {en_nationality}, {|don't even ask|you people ruin everything|}
            this would look bad on you anyway, {|fatty|ugly|}
        """,
        kinds=(COMMENT,),
    ),
    chat(
        "en.offensive.message_threat",
        ABUSE,
        """
            {|I know where you live|I have your address|}, {|watch yourself|you'll regret this|}
            leave bad feedback and {|you're dead|I'll make you pay|}
            ship it already {en_insult}
            I'll post your {|name|face|address|} everywhere {en_insult}
            go kill yourself {|loser|}
            {en_nationality} {|should go back where they came from|are animals|}
        """,
        kinds=(MESSAGE,),
    ),
    chat(
        "en.offensive.chat_casual",
        ABUSE,
        """
            wtf is wrong with you {en_insult}
            shut up {en_insult}
            seriously you {en_insult}
            stfu {en_insult} {{emoji}|}
            ur such a {en_insult} lol
            kys {|loser|{en_insult}|}
        """,
    ),
    chat(
        "en.offensive.polite_veneer",
        ABUSE,
        """
            With respect, I don't sell to {|idiots|people this dumb|}. You are a {en_insult}.
            I'd rather not deal with {en_nationality}, they can't be trusted.
            I don't want a rating from a {en_insult} like you.
            Maybe look in a mirror before commenting, you're hideous.
            Honestly, people like you shouldn't exist.
        """,
    ),
    listing(
        "en.offensive.listing_rude",
        ABUSE,
        """
            {en_item} || {en_desc} No lowballers, {en_insult}s will be blocked.
            {en_apparel} {size} || {en_desc} Don't buy this if you're fat and ugly.
            {en_item} || Not shipping to {en_nationality}. {en_desc}
            {en_item} || {en_desc} Leave bad feedback and you're a {en_insult}, simple.
        """,
        _ITEMS,
        prices=(10, 300),
    ),
    # --- offplatform_payment ----------------------------------------------------
    chat(
        "en.payment.message_polite",
        PAY,
        """
            Would you mind paying by «bank transfer»? I can send you {en_bank} details.
            To avoid the fees, could you transfer the payment directly to {en_bank}?
            Routing number {acct}; please send the money there and I will ship.
            If you pay through {en_payapp}, I can take {en_price} off.
            Could you cancel the order so we can settle the payment directly?
            Would you be able to pay with {|Amazon|iTunes|Steam|} gift cards?
        """,
        kinds=(MESSAGE,),
    ),
    chat(
        "en.payment.message_casual",
        PAY,
        """
            can you just «{en_payapp}» me?
            send it on {en_payapp} and I'll do {en_price} off
            the app takes fees, {en_payapp} is easier
            cancel it and just wire me the money
            put the money in {en_bank}
            send me the gift card code and I'll ship
            I take {|bitcoin|crypto|USDT|} too, cheaper than paying through the app
        """,
        kinds=(MESSAGE,),
    ),
    listing(
        "en.payment.listing",
        PAY,
        """
            {en_item} || {en_desc} Comment before buying, «bank transfer» gets a discount.
            {en_item} like new || {en_desc} Wire transfer also accepted, {|just ask|message me|}.
            {en_item} || I'll knock off the fees if you pay outside the app. {en_desc}
            {en_item} local pickup || {en_desc} «Cash only», meet at {en_area}.
            {en_item} || {en_desc} {en_price} off if you pay with {en_payapp}.
        """,
        _ITEMS,
        prices=(10, 400),
    ),
    listing(
        "en.payment.listing_notes",
        PAY,
        """
            {en_item} || Item: {en_item}¶Payment: bank transfer or cash on pickup¶Shipping: {en_ship}
            {en_item} || - Condition: {|like new|used|}¶- Payment: {en_payapp} also OK
            {en_item} || {en_desc}¶Want to pay by wire? Comment first.
            {en_item} || {en_desc}¶Handoff: {en_area}, cash
        """,
        _ITEMS,
        prices=(10, 400),
    ),
    chat(
        "en.payment.comment",
        PAY,
        """
            can we meet at {en_area} and I pay cash?
            can I pay you in cash in person?
            I'll buy for {en_price} if I can pay with {en_payapp}
            I can pay by bank transfer {|right now|today|} if that's ok {{emoji}|}
            anyone up for a deal outside the app?
        """,
        kinds=(COMMENT,),
    ),
    Family(
        "en.payment.with_contact",
        (MESSAGE,),
        ("offplatform_payment", "offplatform_contact"),
        templates=(
            "text me at {en_phone} and pay on {en_payapp}",
            "add me on {en_line} {handle}, we can do {en_payapp} there",
            "email {email} and I'll send my bank details",
            "call {en_phone}, we'll sort out the bank transfer",
        ),
        rows=36,
    ),
    # --- offplatform_contact ----------------------------------------------------
    chat(
        "en.contact.message_polite",
        CON,
        """
            It would be easier to continue on {en_line}; my ID is {handle}.
            If anything comes up, please call me at {en_phone}.
            Could you email me at {email}?
            I'll send more photos to {email}.
            Please reach out through {en_sns} DMs.
        """,
        kinds=(MESSAGE,),
    ),
    chat(
        "en.contact.chat_casual",
        CON,
        """
            add me on «{en_line}»: {handle}
            my {en_line} is {handle} {{emoji}|}
            {|text|message|} me on {en_line} for more pics
            «DM» me {|pls|please|}{|!|}
            search {handle} on {en_sns}
            faster if you just call {en_phone}
        """,
    ),
    listing(
        "en.contact.listing",
        CON,
        """
            {en_item} || {en_desc} Cheaper on my website {url}
            {en_item} || {en_desc} Full shop at {url}
            {en_item} negotiable || {en_desc} In a hurry? «Call» {en_phone}
            {en_item} || {en_desc} Contact me by email: {email}
            {en_item} || {en_desc} Questions also on {en_line}: {handle}
        """,
        _ITEMS,
        prices=(10, 300),
    ),
    listing(
        "en.contact.listing_notes",
        CON,
        """
            {en_item} || Item: {en_item}¶Contact: {email}
            {en_item} || - Condition: {|like new|used|}¶- Questions: {en_line} {handle}
            {en_item} || {en_desc}¶More details on {en_sns} ({handle})
            {en_item} || {en_desc}¶Check stock at {url}
        """,
        _ITEMS,
        prices=(10, 300),
    ),
    chat(
        "en.contact.comment",
        CON,
        """
            follow me on {en_sns}, I post drops there first {handle}
            check my {en_sns} {handle} for {|more deals|the rest|}
            stock is listed at {url}
            this app is clunky, let's talk on {en_line}
            here's my «email», let's deal directly → {email}
        """,
        kinds=(COMMENT,),
    ),
    chat(
        "en.contact.message_numbers",
        CON,
        """
            my number is {en_phone}
            my «phone number» is {en_phone}, text me
            contact: {email} / {en_phone}
            {en_line}: {handle}{|, I reply faster there|}
        """,
        kinds=(MESSAGE,),
    ),
)
