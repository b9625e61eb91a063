-- CreateTable
CREATE TABLE "signal_event" (
    "issuer" TEXT NOT NULL,
    "jti" TEXT NOT NULL,
    "received_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "signal_event_pkey" PRIMARY KEY ("issuer","jti")
);

-- CreateTable
CREATE TABLE "user_risk" (
    "issuer" TEXT NOT NULL,
    "subject" TEXT NOT NULL,
    "level" TEXT NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "user_risk_pkey" PRIMARY KEY ("issuer","subject")
);
